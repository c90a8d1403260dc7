"""Words for people in place of machine names: outcomes, models, covariates, measures."""

from __future__ import annotations

MODEL_LABELS = {
    "mixed": "Mixed model (random PDU effect)",
    "mixed3": "Mixed model (random PDU and POD effects)",
    "hc2": "PDU-level regression with HC2 errors",
    "cr2": "Regression with CR2 cluster-robust errors",
    "cr1": "Regression with CR1 cluster-robust errors",
    "gee": "GEE (population-averaged)",
    "dim": "Difference in cluster means",
    "ri": "Randomisation inference",
    "iv": "Instrumental variables (CACE)",
}
SHORT_MODEL_LABELS = {"mixed": "mixed model", "mixed3": "three-level mixed model",
                      "hc2": "HC2 regression", "cr2": "CR2 regression", "cr1": "CR1 regression",
                      "gee": "GEE", "dim": "difference in means", "ri": "randomisation inference",
                      "iv": "CACE"}
WORDS = {"po": "PO", "pso": "PSO", "spo": "SPO", "pdu": "PDU", "smd": "SMD", "icc": "ICC",
         "id": "ID"}


def humanise(name: str) -> str:
    """'mean_headcount' -> 'Mean headcount'; 'po_vacancy_rate' -> 'PO vacancy rate'."""
    words = [WORDS.get(word, word) for word in str(name).replace("-", "_").split("_") if word]
    if not words:
        return str(name)
    first = words[0]
    words[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(words)


def model_label(model: str, short: bool = False) -> str:
    """'mixed' -> 'Mixed model (random PDU effect)' (short: 'mixed model')."""
    table = SHORT_MODEL_LABELS if short else MODEL_LABELS
    return table.get(str(model), humanise(model))


def outcome_label(outcome: str) -> str:
    """'supervision_quality' -> 'Supervision quality'."""
    return humanise(outcome)


def effect_label(outcome: str, model: str, arm: str, randomised: bool = True) -> str:
    """One effect in words: 'Supervision quality, mixed model: Treatment'."""
    suffix = "" if randomised else " (non-randomised)"
    return f"{outcome_label(outcome)}, {model_label(model, short=True)}: {arm}{suffix}"
