"""VQA answer normalisation, and ``vqa_accuracy``: VQAv2's accuracy against the answers of several people.

``normalise`` is the answer processing of the VQAv2 evaluation: the official ``vqaEval.py`` (GT-Vision-Lab/VQA,
``PythonEvaluationTools/vqaEvaluation/vqaEval.py``: ``processPunctuation`` and ``processDigitArticle``) as the
VQA challenge's EvalAI server applies it, in the version lmms-eval ships (``EvalAIAnswerProcessor`` in
``lmms_eval/tasks/_task_utils/vqa_eval_metric.py``, copied from MMF/Pythia), so that figures compare with
published ones. In order: lower case; commas and question marks dropped, ``'s`` split off (``dog's`` is
``dog 's``); newlines and tabs as spaces; each of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` dropped if the text
has it next to a space, else made a space (``black-and-white`` is ``black and
white``, ``black - white`` is ``black white``); a full stop not followed by a digit dropped (``2.5`` stays);
the number words zero to ten (and ``none``) as digits; the articles a, an, the dropped; contractions written
without their apostrophe restored (``dont`` is ``don't``, ``youre`` is ``you're``).

Two departures from the tables the reference code holds: its ``Im``, ``Ive``, ``Id've`` entries (capitalised,
so never met after lower casing) are left out, and ``somebodyd`` is ``somebody'd`` (the table has the pair the
wrong way round). The reference code replaces at most 32 full stops (``re.UNICODE`` passed as the count); this
replaces all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from visionbench import hookimpl
from visionbench.scorer import NoParams, Score, Scored, Scorer

_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
_FULL_STOP = re.compile(r"\.(?!\d)")
_NUMBERS = dict(
    zip("none zero one two three four five six seven eight nine ten".split(), "0 0 1 2 3 4 5 6 7 8 9 10".split())
)
_ARTICLES = frozenset({"a", "an", "the"})
#: The contractions the evaluation restores; each is also written with any one of its apostrophes left out.
_CONTRACTED = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd he'd've
he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've might've mustn't must've needn't not've
o'clock oughtn't 'ow's'at shan't she'd've shouldn't shouldn't've should've somebody'd somebody'd've somebody'll
somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll that's there'd
there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll
what're what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't
would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've
""".split()
_CONTRACTIONS = {word[:i] + word[i + 1 :]: word for word in _CONTRACTED for i, c in enumerate(word) if c == "'"}


def normalise(text: str) -> str:
    """An answer as the VQAv2 evaluation compares it (see the module's docstring): ``"Two dogs."`` is ``"2 dogs"``,
    ``"The cat's toy"`` is ``"cat 's toy"``, ``"dont know"`` is ``"don't know"``."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for mark in _PUNCTUATION:
        out = out.replace(mark, "" if f"{mark} " in text or f" {mark}" in text else " ")
    out = _FULL_STOP.sub("", out)
    words = [_NUMBERS.get(word, word) for word in out.split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def vqa_accuracy(answer: str, humans: Sequence[str]) -> tuple[float, int]:
    """(accuracy, how many of ``humans`` gave the answer), both sides normalised. The accuracy is the official
    one: min(1, matches among the other answers / 3) averaged over leaving out each human answer in turn, which
    is about min(1, matches / 3) (3 of 10 people: 0.9, 4 or more: 1)."""
    given = normalise(answer)
    said = [normalise(h) == given for h in humans]
    matches = sum(said)
    return sum(min(1.0, (matches - same) / 3) for same in said) / len(said), matches


class VqaAccuracy(Scorer[NoParams]):
    """VQAv2 accuracy: the references are the answers of several people (a label listing them all, ten in VQAv2,
    repeats kept)."""

    name = "vqa_accuracy"
    answer_types = frozenset({"text", "choice"})

    def score(self, item: Scored) -> Score:
        value, matches = vqa_accuracy(str(item.answer), [str(r) for r in item.references])
        return Score(value, None if value == 1.0 else f"{matches} of {len(item.references)} people said it")


@hookimpl
def register_scorers(register):
    register(VqaAccuracy)
