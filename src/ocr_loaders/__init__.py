"""ocr_loaders: DeepSeek-OCR document loaders for LlamaIndex and LangChain."""
from .grounding import parse_grounded
from .tokens import vision_tokens
__all__ = ["parse_grounded", "vision_tokens"]
