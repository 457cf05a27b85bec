"""Small helpers for the pages: "an iPhone", short SKU labels, times gone by."""

from django import template
from django.utils import timezone

register = template.Library()

# Written with a vowel but said with a consonant sound, and the other way round.
_A_BEFORE = ("uni", "use", "usu", "eu", "one", "once", "ubi", "ur")
_AN_BEFORE = ("hour", "honest", "honour", "heir")


@register.filter
def indefinite_article(phrase: str) -> str:
    """The phrase with "a" or "an" in front: "an iPhone 3G 8GB black", "a unit"."""
    text = str(phrase).strip()
    lower = text.lower()
    if lower.startswith(_AN_BEFORE):
        article = "an"
    elif lower.startswith(_A_BEFORE):
        article = "a"
    else:
        article = "an" if lower[:1] in ("a", "e", "i", "o", "u") else "a"
    return f"{article} {text}"


def _words(name: str) -> list[str]:
    return str(name).split()


@register.filter
def with_short_labels(lines) -> list[tuple[object, str]]:
    """Pair each line (anything with a `sku`) with its SKU's name less the words every
    line's SKU shares: ("iPhone 3G 8GB black", "iPhone 3G 16GB white") -> "8GB black",
    "16GB white". A single SKU keeps its whole name; a SKU without a name, its code."""
    lines = list(lines)
    skus = [line["sku"] if isinstance(line, dict) else line.sku for line in lines]
    names = [_words(sku.name) for sku in skus]
    shared = 0
    if len(names) > 1:
        while all(len(n) > shared + 1 for n in names) and len({n[shared] for n in names}) == 1:
            shared += 1
    return [
        (line, " ".join(words[shared:]) or sku.code)
        for line, sku, words in zip(lines, skus, names, strict=True)
    ]


@register.filter
def is_past(moment) -> bool:
    """True for a date-time before now (a collect-by time that has gone by)."""
    return moment is not None and moment < timezone.now()
