"""Object storage (docs/storage.md): sources, outputs and verification on s3:// URLs, against a real
S3 API server on the loopback (moto's, in a thread), which s3fs and botocore reach over HTTP through
AWS_ENDPOINT_URL: the client code users run against AWS or MinIO."""

from __future__ import annotations

import json
import socket
import sys
import zipfile

import pytest

from tests.conftest import only_error_line

SECRET, KEY_ID, TOKEN = "s3cr3t-Value-never-shown-0123456789", "AKIANEVERSHOWN0001", "session-token-never-shown-42"


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 at a free port, for this module's tests."""
    pytest.importorskip("s3fs", reason="the object storage tests need s3fs: pip install 'ckptconv[test]'")
    server_mod = pytest.importorskip("moto.server", reason="the object storage tests need moto[server]: pip install 'ckptconv[test]'")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log is not the test's output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path, request):
    """A fresh bucket on the server, and the environment a user sets for it (fake credentials that
    must never be shown); returns a boto3 client and the bucket's name."""
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    bucket = request.node.name.lower().replace("_", "-")[:50].strip("-")
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture
def training(built, s3):
    """A pycls training checkpoint (model, EMA, SGD momentum) as an object; returns its URL and local copy."""
    client, bucket = s3
    src = built.source("regnetx_200mf", ema=True, optimizer=True)
    client.upload_file(str(src), bucket, "zoo/RegNetX-200MF.pyth")
    return f"s3://{bucket}/zoo/RegNetX-200MF.pyth", src


def _no_secret(*texts) -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode()
        assert all(s.encode() not in data for s in (SECRET, KEY_ID, TOKEN))


def _tensors(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_convert_from_s3_to_a_local_file_reads_the_weight_set_alone(cli, training, tmp_path):
    url, src = training
    out, local = tmp_path / "out.pth", tmp_path / "local.pth"
    result = cli("pycls2mmdet", url, out, "--json")
    assert result.exit_code == 0, result.output
    assert cli("pycls2mmdet", src, local).exit_code == 0
    mine, theirs = _tensors(out), _tensors(local)
    assert list(mine) == list(theirs) and all((mine[k] == theirs[k]).all() for k in mine)
    report = json.loads(result.stdout)
    read, size = report["source_read"], src.stat().st_size
    with zipfile.ZipFile(src) as zf:
        infos = zf.infolist()
        weights = sum(i.file_size for i in infos if _is_model_record(zf, i))
        small = sum(i.file_size for i in infos if not i.filename.rsplit("/", 1)[-1].isdigit())  # data.pkl, byteorder, version
        index = small + sum(30 + len(i.filename) + 256 for i in infos) + (size - infos[-1].header_offset)
    assert read["size"] == size
    assert weights < read["bytes"] <= weights + index + 2 * size // 64, read  # the set, its index, and the bounded bytes between ranges
    assert read["bytes"] < 0.45 * size  # never the EMA copy, never the optimizer's momentum
    assert report["meta"]["source"] == "RegNetX-200MF.pyth" and report["meta"]["source_sha256"] == ""
    _no_secret(result.stdout, result.stderr, out.read_bytes())


_MODEL_RECORDS: dict = {}


def _is_model_record(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """A record holding a tensor of model_state (the weights a conversion reads), found by the inert index."""
    from ckptconv.io.zipindex import read_index

    key = zf.filename
    if key not in _MODEL_RECORDS:
        from pathlib import Path

        index = read_index(Path(zf.filename))
        _MODEL_RECORDS[key] = {ref.record for ref in index.refs(("model_state",)).values()}
    return info.filename in _MODEL_RECORDS[key]


def test_convert_s3_to_s3_publishes_one_verified_object(cli, training, s3, tmp_path):
    client, bucket = s3
    url, _ = training
    out = f"s3://{bucket}/converted/regnetx_200mf_mmdet.pth"
    result = cli("pycls2mmdet", url, out, "--config-out", tmp_path / "cfg.py")
    assert result.exit_code == 0, result.output
    assert f"checkpoint='{out}'" in (tmp_path / "cfg.py").read_text()  # the config loads the object by its URL
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["converted/regnetx_200mf_mmdet.pth", "zoo/RegNetX-200MF.pyth"]  # one object, no temporary one
    client.download_file(bucket, "converted/regnetx_200mf_mmdet.pth", str(tmp_path / "got.pth"))
    assert cli("verify", tmp_path / "got.pth").exit_code == 0
    verified = cli("verify", out, "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["files"][0]["ok"]
    _no_secret(result.stdout, result.stderr, verified.stdout, (tmp_path / "got.pth").read_bytes(), (tmp_path / "cfg.py").read_bytes())


def test_inspect_of_an_object_reads_its_index_alone(cli, training):
    url, src = training
    result = cli("inspect", url, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["path"] == url and info["file_bytes"] == src.stat().st_size
    assert set(info["weight_sets"]) == {"model", "ema"} and info["weight_sets"]["model"]["arch"] == "regnetx_200mf"
    assert info["read"]["bytes"] < src.stat().st_size // 16  # the central directory, headers and data.pkl: no tensor
    _no_secret(result.stdout, result.stderr)


def test_an_existing_object_is_never_replaced_without_force(cli, training, s3):
    client, bucket = s3
    url, _ = training
    client.put_object(Bucket=bucket, Key="out/b.pth", Body=b"someone else's bytes")
    before = client.head_object(Bucket=bucket, Key="out/b.pth")["ETag"]
    result = cli("pycls2mmdet", url, f"s3://{bucket}/out/b.pth")
    assert result.exit_code == 2
    assert "the output object exists" in only_error_line(result) and "--force" in only_error_line(result)
    assert client.head_object(Bucket=bucket, Key="out/b.pth")["ETag"] == before
    assert cli("pycls2mmdet", url, f"s3://{bucket}/out/b.pth", "--force").exit_code == 0
    assert client.head_object(Bucket=bucket, Key="out/b.pth")["ContentLength"] > 1000


def test_an_object_that_appears_meanwhile_is_kept(s3, tmp_path):
    """The conditional PUT itself (If-None-Match: *): a name taken after the checks is not replaced."""
    from ckptconv.errors import UsageError
    from ckptconv.io.store import PendingUpload, Url

    client, bucket = s3
    pending = PendingUpload(Url(f"s3://{bucket}/race.pth"))
    pending.write(lambda f: f.write(b"ours"))
    client.put_object(Bucket=bucket, Key="race.pth", Body=b"theirs")
    with pytest.raises(UsageError, match="appeared while converting"):
        pending.commit(replace=False)
    assert client.get_object(Bucket=bucket, Key="race.pth")["Body"].read() == b"theirs"


def test_a_missing_bucket_is_a_usage_error_naming_it(cli, training, s3):
    client, _ = s3
    url, _ = training
    result = cli("pycls2mmdet", url, "s3://no-such-bucket-here/out.pth")
    assert result.exit_code == 2
    assert "the bucket 'no-such-bucket-here' does not exist" in only_error_line(result)
    assert "no-such-bucket-here" not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    missing = cli("pycls2mmdet", "s3://no-such-bucket-here/src.pyth", "o.pth")
    assert missing.exit_code == 2 and "does not exist" in only_error_line(missing)
    _no_secret(result.stderr, missing.stderr)


def test_a_missing_object_and_a_prefix_are_usage_errors(cli, training, s3, tmp_path):
    _, bucket = s3
    for src, needle in ((f"s3://{bucket}/zoo/nothing.pyth", "no such object"), (f"s3://{bucket}/zoo", "is a directory")):
        result = cli("pycls2mmdet", src, tmp_path / "o.pth")
        assert result.exit_code == 2 and needle in only_error_line(result)
    assert not (tmp_path / "o.pth").exists()


def test_a_url_of_a_file_system_not_installed_exits_2_naming_its_package(tmp_path):
    """In a fresh process where s3fs cannot be imported (as without ckptconv[s3]), and gs:// (gcsfs)."""
    import subprocess

    hide = "import sys; sys.modules['s3fs'] = None; sys.argv = ['ckptconv'] + sys.argv[1:]; from ckptconv.cli import run; run()"
    for url, package, fix in (("s3://bucket/zoo/src.pyth", "s3fs", "pip install 'ckptconv[s3]'"), ("gs://bucket/src.pyth", "gcsfs", "pip install gcsfs")):
        if package == "gcsfs" and _installed("gcsfs"):
            continue
        run = subprocess.run([sys.executable, "-c", hide, "pycls2mmdet", url, str(tmp_path / "o.pth")], capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and package in lines[0] and fix in lines[0], run.stderr
    assert not (tmp_path / "o.pth").exists()


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_options_that_read_local_files_only_refuse_a_url(cli, training, tmp_path):
    url, _ = training
    result = cli("pycls2mmdet", url, tmp_path / "o.pth", "--cfg", "s3://bucket/config.yaml")
    assert result.exit_code == 2 and "--cfg" in only_error_line(result) and "local files only" in only_error_line(result)


def test_a_url_shows_no_user_part_and_no_query_and_errors_are_scrubbed(monkeypatch):
    from ckptconv.io.store import Url, location, scrub

    url = location(f"s3://{KEY_ID}:{SECRET}@bucket/zoo/EN-B0.pyth?X-Amz-Signature={TOKEN}")
    assert isinstance(url, Url) and str(url) == "s3://bucket/zoo/EN-B0.pyth" and url.name == "EN-B0.pyth" and url.suffix == ".pyth"
    assert location("file:///tmp/x.pyth") == __import__("pathlib").Path("/tmp/x.pyth") and location("C:/x.pyth").as_posix() == "C:/x.pyth"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert scrub(f"denied for {SECRET} at https://host/k?X-Amz-Credential={KEY_ID}") == "denied for *** at https://host/k"
    with pytest.raises(TypeError):
        open(url)  # a URL has no local name: no file call can be made with it by mistake


def test_a_safetensors_object_verifies_and_inspects(cli, built, s3):
    client, bucket = s3
    local = built.output("regnetx_200mf", "mmdet", "safetensors")
    client.upload_file(str(local), bucket, "out/r.safetensors")
    url = f"s3://{bucket}/out/r.safetensors"
    verified = cli("verify", url, "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["files"][0]["ok"], verified.output
    inspected = cli("inspect", url, "--json")
    info = json.loads(inspected.stdout)
    assert inspected.exit_code == 0 and info["format"] == "safetensors" and info["read"]["bytes"] < local.stat().st_size // 16


@pytest.mark.parametrize("args", [
    ["batch", "s3://bucket/zoo", "--out-dir", "OUT"],
    ["batch", "SRC", "--out-dir", "s3://bucket/out"],
    ["batch", "SRC", "--out-dir", "OUT", "--report", "s3://bucket/report.json"],
    ["report", "merge", "s3://bucket/report-1.json", "--out", "OUT/merged.json"],
    ["--tables", "s3://bucket/tables", "mappings"],
])
def test_a_url_where_only_local_paths_are_taken_yet_exits_2_never_read_as_a_local_path(cli, tmp_path, args):
    (tmp_path / "src").mkdir()
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli(*[{"OUT": tmp_path / "out", "SRC": tmp_path / "src"}.get(a, a) for a in args])
    assert result.exit_code == 2 and "s3:// URLs are not taken here yet" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing
