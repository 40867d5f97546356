"""``ckptconv batch``'s library: find the inputs (``inputs``), plan every output before anything is
written (``plan``), convert one job (``job``), and run the jobs in worker processes (``pool``)."""
