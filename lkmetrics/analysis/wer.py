"""Word error rate of a transcript against the words spoken (jiwer), both normalised for case,
punctuation and spacing: ``stt.wer`` of the simulated caller's lines."""

from __future__ import annotations

from typing import Any

_TRANSFORM: Any = None


def normalise(text: str) -> list[str]:
    """The words of ``text`` in lower case, without punctuation (``"Mm-hmm."`` -> ``mmhmm``)."""
    return [w for w in _transform()(text)[0] if w] if text.strip() else []


def _transform() -> Any:
    global _TRANSFORM
    if _TRANSFORM is None:
        import jiwer

        punctuation = jiwer.RemovePunctuation()  # type: ignore[no-untyped-call]
        _TRANSFORM = jiwer.Compose([jiwer.ToLowerCase(), punctuation,
                                    jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                                    jiwer.ReduceToListOfListOfWords()])
    return _TRANSFORM


def word_error_rate(reference: str, hypothesis: str) -> float | None:
    """(substitutions + deletions + insertions) / words of the reference; None when the
    reference has no words (nothing to measure against)."""
    import jiwer

    ref = normalise(reference)
    if not ref:
        return None
    hyp = normalise(hypothesis)
    if not hyp:
        return 1.0  # every word deleted
    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))
