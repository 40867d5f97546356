"""Which weight set each library takes from a checkpoint file. torch-free."""

# which weight set each library's loader takes from a file, in order of preference ("best": pycls's
# choice by recorded error); none present: the whole file is the state dict
LOADERS = {
    "mmengine": ("state_dict",),  # mmengine's load_checkpoint: 'state_dict' if present, else the whole dict
    "timm": ("state_dict_ema", "state_dict"),  # timm's load_state_dict prefers the EMA weights
    "pycls": ("best",),  # pycls's load_checkpoint: model_state, or ema_state when its recorded error is lower
    "torchvision": (),  # model.load_state_dict(torch.load(f)): the file is the state dict
}

# what each loader is, in the words ``ckptconv inspect`` prints
LIBRARIES = {"mmengine": "MMDetection / mmpretrain (mmengine)", "timm": "timm", "pycls": "pycls", "torchvision": "torchvision (load_state_dict)"}
