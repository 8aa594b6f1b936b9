"""Exceptions raised by the provider. Each message names the object and the fix."""

from __future__ import annotations

from airflow.exceptions import AirflowException


class MilvusProviderError(AirflowException):
    """Base class: a Milvus operation failed or was refused by the provider."""


class MilvusInputError(MilvusProviderError, ValueError):
    """Bad input: nothing was changed."""


class MilvusAuthenticationError(MilvusProviderError):
    """The server answered but refused the credentials. Never retried."""


class MilvusUnavailableError(MilvusProviderError):
    """The server could not be reached within the retry bound."""


class MilvusIndexBuildError(MilvusProviderError):
    """An index build failed or did not finish in time."""
