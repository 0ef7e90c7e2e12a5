"""``import ocr_loaders`` works without either framework; adapters name the missing extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("llama_index", "langchain_core", "langchain_community"):
                raise ImportError(f"blocked {name}")
            return None
    sys.meta_path.insert(0, Block())
""")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_base_import_without_frameworks() -> None:
    done = run("""
        import ocr_loaders
        blocks = ocr_loaders.parse_grounded("<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\\nhi")
        assert blocks[0].text == "hi"
        assert ocr_loaders.vision_tokens(1190, 1684) == 903
        assert "llama_index" not in sys.modules and "langchain_core" not in sys.modules
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_adapters_name_the_extra() -> None:
    done = run("""
        try:
            from ocr_loaders import DeepSeekOCRReader
        except ImportError as exc:
            print(exc)
        try:
            from ocr_loaders import DeepSeekOCRLoader
        except ImportError as exc:
            print(exc)
    """)
    assert done.returncode == 0, done.stderr
    assert "pip install 'ocr-loaders[llamaindex]'" in done.stdout
    assert "pip install 'ocr-loaders[langchain]'" in done.stdout
