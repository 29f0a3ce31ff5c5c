"""majordome.jobs exports every public member of its modules, and its errors derive from the base."""

from __future__ import annotations

import types

import majordome.guardrails
import majordome.jobs
from majordome import MajordomeError, ProviderError


def own_public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (getattr(value, "__module__", "") or "").startswith(module.__name__)
    }


def test_jobs_all_is_complete() -> None:
    assert own_public_names(majordome.jobs) == set(majordome.jobs.__all__)
    assert len(majordome.jobs.__all__) == len(set(majordome.jobs.__all__))


def test_guardrails_all_names_exist() -> None:
    assert all(hasattr(majordome.guardrails, name) for name in majordome.guardrails.__all__)
    assert {"GuardrailResult", "Guardrails", "redact_pii", "check_text"} <= set(majordome.guardrails.__all__)


def test_job_errors_derive_from_the_base() -> None:
    assert issubclass(majordome.jobs.JobOutputError, MajordomeError)
    assert issubclass(majordome.jobs.TranscriptionFailed, ProviderError)
