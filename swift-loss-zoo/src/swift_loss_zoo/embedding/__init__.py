"""Embedding and reranking losses: InfoNCE, sentence-pair losses, point- and listwise rerankers."""

from swift_loss_zoo.embedding.contrastive import ContrastiveLoss
from swift_loss_zoo.embedding.cosine_similarity import CosineSimilarityLoss
from swift_loss_zoo.embedding.infonce import InfoNCELoss
from swift_loss_zoo.embedding.listwise_reranker import ListwiseRerankerLoss
from swift_loss_zoo.embedding.matryoshka import MatryoshkaLoss
from swift_loss_zoo.embedding.online_contrastive import OnlineContrastiveLoss
from swift_loss_zoo.embedding.pointwise_reranker import PointwiseRerankerLoss

__all__ = [
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "InfoNCELoss",
    "ListwiseRerankerLoss",
    "MatryoshkaLoss",
    "OnlineContrastiveLoss",
    "PointwiseRerankerLoss",
]
