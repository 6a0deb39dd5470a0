"""Embedding and reranking losses."""

from swift_zoo import LossSpec

_MODULE = "swift_loss_zoo.embedding"

SPECS = [
    LossSpec(
        "contrastive",
        f"{_MODULE}.contrastive:ContrastiveLoss",
        summary="Margin contrastive loss on sentence pairs (similar pulled together, dissimilar pushed past a margin)",
        reference="arXiv:1908.10084",
    ),
    LossSpec(
        "cosine_similarity",
        f"{_MODULE}.cosine_similarity:CosineSimilarityLoss",
        summary="Squared error between a pair's cosine similarity and its gold score (STS regression)",
        reference="arXiv:1908.10084",
    ),
    LossSpec(
        "infonce",
        f"{_MODULE}.infonce:InfoNCELoss",
        aliases=("info_nce",),
        summary="InfoNCE over in-batch and hard negatives, never counting a positive as a negative",
        reference="arXiv:1807.03748",
    ),
    LossSpec(
        "listwise_reranker",
        f"{_MODULE}.listwise_reranker:ListwiseRerankerLoss",
        summary="Softmax cross-entropy picking the positive (column 0) among a query's candidates",
        reference="arXiv:2101.08751",
    ),
    LossSpec(
        "matryoshka",
        f"{_MODULE}.matryoshka:MatryoshkaLoss",
        aliases=("mrl",),
        summary="Any embedding loss on several leading slices of the embeddings, weighted (ms-swift --mrl_dims)",
        reference="arXiv:2205.13147",
    ),
    LossSpec(
        "online_contrastive",
        f"{_MODULE}.online_contrastive:OnlineContrastiveLoss",
        summary="Contrastive loss on the hard positive and hard negative pairs of the batch",
        reference="arXiv:1908.10084",
    ),
    LossSpec(
        "pointwise_reranker",
        f"{_MODULE}.pointwise_reranker:PointwiseRerankerLoss",
        aliases=("reranker",),
        summary="Binary cross-entropy on a cross-encoder's relevance logit per (query, document)",
        reference="arXiv:1901.04085",
    ),
]
