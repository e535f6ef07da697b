"""The severity model: a learned second opinion for the posts the rules are unsure about."""

from services.classify.model.artifact import ModelArtifact, ModelError, Prediction
from services.classify.model.combine import Combined, ModelAlone, unsure

__all__ = ["Combined", "ModelAlone", "ModelArtifact", "ModelError", "Prediction", "unsure"]
