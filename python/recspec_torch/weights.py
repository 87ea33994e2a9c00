"""recspec weight files: safetensors keyed by parameter key (`f_c/attended/query.weight`)."""

from safetensors.torch import load_file, save_file


def load_safetensors(path):
    """Reads a safetensors file into {recspec key: tensor} on the CPU."""
    return dict(load_file(str(path), device="cpu"))


def save_safetensors(tensors, path):
    """Writes {recspec key: tensor} as a safetensors file (detached, contiguous, on the CPU)."""
    plain = {key: t.detach().cpu().contiguous() for key, t in tensors.items()}
    save_file(plain, str(path))
