"""Stores an engine weights file's tensors as f16 (half the download), metadata kept.

    python3 scripts/f16_weights.py IN.safetensors OUT.safetensors

The provenance in the metadata gains "dtype": "f16" and the SHA-256 of the f32 file it came
from. Values that do not fit f16 (beyond 65504) are an error rather than a silent Inf.
Needs numpy and safetensors only.
"""

import hashlib
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    with safe_open(src, "np") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    half = {}
    for k, v in tensors.items():
        if np.abs(v).max(initial=0) > np.finfo(np.float16).max:
            sys.exit(f"{k}: values beyond f16's range; keep this file in f32")
        half[k] = v.astype(np.float16)
    prov = json.loads(meta.get("provenance", "{}"))
    prov["dtype"] = "f16"
    with open(src, "rb") as fh:
        prov["f32_sha256"] = hashlib.sha256(fh.read()).hexdigest()
    meta["provenance"] = json.dumps(prov)
    save_file(half, out, metadata=meta)
    print(f"wrote {out} ({len(half)} tensors, f16)")


if __name__ == "__main__":
    main()
