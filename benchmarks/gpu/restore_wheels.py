"""Rewrite wheels uncompressed (ZIP_STORED), byte-identical contents, so one xz pass over the
whole bundle compresses them together. usage: python restore_wheels.py OUT_DIR WHEEL..."""

import os
import sys
import zipfile


def main() -> None:
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for src in sys.argv[2:]:
        dst = os.path.join(out_dir, os.path.basename(src))
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                out.external_attr = info.external_attr
                zout.writestr(out, zin.read(info.filename))


if __name__ == "__main__":
    main()
