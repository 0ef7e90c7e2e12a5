"""Write a smaller copy of the vLLM wheel for an H200 (sm_90), stored uncompressed so xz can work.

usage: python strip_vllm.py IN.whl OUT_DIR [--blank-non-sm90]

Dropped (none of it runs on a Hopper GPU serving DeepSeek-OCR):
  vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so   FlashAttention 2 (sm_80 SASS + PTX, 290 MiB); on
                                             sm_90 vLLM picks FA3 (fa_utils.get_flash_attn_version)
  vllm/vllm-rs                               the optional Rust frontend (VLLM_USE_RUST_FRONTEND=1)
  vllm/third_party/fmha_sm100/               Blackwell attention (MiniMax-M3 only, imported lazily)
  vllm/third_party/deep_gemm/_C.cpython-3{10,11,13,14}*  DeepGEMM builds for other Pythons
With --blank-non-sm90, the SASS for other GPUs inside _C and _moe_C is zeroed in place (see
fatbin.py); off by default.
The wheel keeps its name; RECORD is rewritten for what is left (and new hashes where blanked).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DROP = [
    r"^vllm/vllm_flash_attn/_vllm_fa2_C\.abi3\.so$",
    r"^vllm/vllm-rs$",
    r"^vllm/third_party/fmha_sm100/",
    r"^vllm/third_party/deep_gemm/_C\.cpython-3(10|11|13|14)-",
]
BLANK = [r"^vllm/_C_stable_libtorch\.abi3\.so$", r"^vllm/_moe_C_stable_libtorch\.abi3\.so$"]


def blank_non_sm90(data: bytes) -> bytes:
    import fatbin

    buf = bytearray(data)
    for kind, arch, off, size, _flags in list(fatbin.entries(bytes(buf))):
        if (kind == 2 and arch != 90) or (kind == 1 and arch > 90):
            buf[off : off + size] = bytes(size)
    return bytes(buf)


def main() -> None:
    src, out_dir = sys.argv[1], sys.argv[2]
    blank = "--blank-non-sm90" in sys.argv
    os.makedirs(out_dir, exist_ok=True)
    dst = os.path.join(out_dir, os.path.basename(src))
    dropped = kept = 0
    record_name = None
    records: list[tuple[str, str, str]] = []
    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_STORED) as zout,
    ):
        for info in zin.infolist():
            name = info.filename
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            if any(re.search(p, name) for p in DROP):
                dropped += info.file_size
                continue
            data = zin.read(name)
            if blank and any(re.search(p, name) for p in BLANK):
                data = blank_non_sm90(data)
            out = zipfile.ZipInfo(name, date_time=info.date_time)
            out.external_attr = info.external_attr
            out.compress_type = zipfile.ZIP_STORED
            zout.writestr(out, data)
            kept += len(data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append((name, f"sha256={digest.decode()}", str(len(data))))
        assert record_name, "no RECORD in the wheel"
        records.append((record_name, "", ""))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records)  # names can hold commas
        zout.writestr(record_name, buf.getvalue())
    os.replace(dst + ".tmp", dst)
    print(f"{dst}: kept {kept / 2**20:.0f} MiB, dropped {dropped / 2**20:.0f} MiB")


if __name__ == "__main__":
    tempfile.tempdir = None
    main()
