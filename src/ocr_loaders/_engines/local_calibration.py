"""Text lines rendered here to calibrate the int8 recogniser (:mod:`.local_quant`): never the
corpus, never a download.

English, German and French words, digits and punctuation in eight of PyMuPDF's built-in
fonts, and a few Chinese and Japanese lines, at the sizes and resolutions of real pages,
degraded the ways scans are (thresholded, paper and ink tones, blur, grain).
"""

from __future__ import annotations

import random

import numpy as np

CALIBRATION_LINES = 24
"""How many lines the activation ranges are computed from."""

_LATIN = (
    "The quarterly report was filed on 12 March 2019, three weeks after the deadline. "
    "Revenue rose 4.7% to $1,284.50 million (see Table 3, p. 17); costs fell by 2,310 units. "
    "In Section 2.1 we describe the method; results follow in Sections 3-5 and Appendix B. "
    "Call +1 (555) 014-2398 or write to info@example.org before 5:30 p.m. on Friday! "
    "Item No. 48-A: 250 g @ EUR 3.99/kg = EUR 0.998; total 17.45; VAT 19 % included. "
    "Quality, speed and memory: which matters most? It depends on the reader's needs. "
    "Die Überprüfung ergab größere Abweichungen bei Maßnahmen für Bäume und Gewässer. "
    "Straße, Grüße, Öffnungszeiten: Mo.-Fr. 8:00-18:00 Uhr, Sa. nach Vereinbarung. "
    "Le comité a approuvé la réforme après un débat très animé ; les élèves étaient déçus. "
    "Où est la bibliothèque ? À côté du théâtre, près de la gare, à gauche de l'hôpital. "
    '"Quoted text", [brackets], {braces}, <angles>, a/b, x_y, #7, *note, & so on; 1st 2nd.'
)
_CJK = (
    "本报告介绍了文字识别模型的量化方法和测试结果，准确率保持不变。"
    "会議は午後三時に始まり、予算と日程について話し合いました。"
    "第3章では2024年の売上高（約1,200億円）を分析する。"
)
_LATIN_FONTS = ("helv", "hebo", "heit", "tiro", "tibo", "tiit", "cour", "cobo")


def calibration_lines(n: int = CALIBRATION_LINES, seed: int = 0) -> list[np.ndarray]:
    """``n`` BGR line crops as the detector cuts them: Latin text (English, German, French,
    digits, punctuation) in eight fonts and a few CJK lines, 7 to 16 pt at 150 to 300 dpi,
    with varied margins, contrast, blur, noise, or thresholded like a bilevel scan."""
    import pymupdf

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    latin, cjk = _LATIN.split(), _CJK
    out = []
    for i in range(n):
        if i % 8 == 7:
            start = rng.randrange(len(cjk) - 8)
            text, font = cjk[start : start + rng.randint(6, 24)], "china-s"
        else:
            start = rng.randrange(len(latin))
            words = [latin[(start + k) % len(latin)] for k in range(rng.randint(1, 14))]
            text, font = " ".join(words), _LATIN_FONTS[i % len(_LATIN_FONTS)]
        size = rng.uniform(7, 16)
        f = pymupdf.Font(font)
        pad_x, pad_y = size * rng.uniform(0.1, 0.6), size * rng.uniform(0.1, 0.4)
        width = f.text_length(text, fontsize=size) + 2 * pad_x
        height = size * (f.ascender - f.descender) + 2 * pad_y
        doc = pymupdf.open()
        page = doc.new_page(width=width, height=height)
        writer = pymupdf.TextWriter(page.rect)
        writer.append((pad_x, pad_y + size * f.ascender), text, font=f, fontsize=size)
        writer.write_text(page)
        pix = page.get_pixmap(dpi=rng.randint(150, 300), colorspace=pymupdf.csGRAY)
        gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
        doc.close()
        out.append(_degrade(gray, rng, noise))
    return out


def _degrade(gray: np.ndarray, rng: random.Random, noise: np.random.Generator) -> np.ndarray:
    """Scan-like variation of a rendered grayscale image, as BGR: a third thresholded to
    black and white, the others with paper and ink tones, a light blur and grain."""
    import cv2

    img: np.ndarray = gray.astype(np.float32)
    if rng.random() < 1 / 3:
        img = np.where(img < rng.uniform(100, 180), 0.0, 255.0).astype(np.float32)
    else:
        paper, ink = rng.uniform(215, 255), rng.uniform(0, 70)
        img = ink + (paper - ink) * img / 255.0
        sigma = rng.uniform(0.0, 1.0)
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img += noise.normal(0.0, rng.uniform(0.0, 6.0), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(out[:, :, np.newaxis], 3, axis=2))
