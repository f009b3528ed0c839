"""Write fitted HistGradientBoostingRegressors as one ONNX TreeEnsembleRegressor.

Why not skl2onnx: skl2onnx 1.20 fails on scikit-learn 1.9's
HistGradientBoostingRegressor (it passes numpy booleans where ONNX wants
ints). Building the node with the `onnx` package is short, and it lets both
models (point and low quantile) live in a single node with n_targets=2, so
the runtime does one tree walk per prediction.

Graph: input `features` float32 [N, F] -> TreeEnsembleRegressor -> output
`log_ratios` float32 [N, 2] = [log(mean/last), log(low/last)].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


def _trees(model):
    """Node arrays of each tree; HGB leaf values already include the learning rate."""
    for predictors in model._predictors:
        yield predictors[0].nodes


def export(models, n_features: int, path: Path) -> None:
    """models: HistGradientBoostingRegressors with an identity link (squared or quantile loss)."""
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                             "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                             "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    base_values = []
    tree_id = 0
    for target, model in enumerate(models):
        if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            raise ValueError("categorical splits are not supported by this exporter")
        base_values.append(float(np.ravel(model._baseline_prediction)[0]))
        for nodes in _trees(model):
            for i, node in enumerate(nodes):
                attrs["nodes_treeids"].append(tree_id)
                attrs["nodes_nodeids"].append(i)
                if node["is_leaf"]:
                    attrs["nodes_featureids"].append(0)
                    attrs["nodes_modes"].append("LEAF")
                    attrs["nodes_values"].append(0.0)
                    attrs["nodes_truenodeids"].append(0)
                    attrs["nodes_falsenodeids"].append(0)
                    attrs["target_treeids"].append(tree_id)
                    attrs["target_nodeids"].append(i)
                    attrs["target_ids"].append(target)
                    attrs["target_weights"].append(float(node["value"]))
                else:
                    # HGB sends x <= threshold left. Our features are never NaN
                    # (the extractor clamps before logs), so missing-value routing is moot.
                    attrs["nodes_featureids"].append(int(node["feature_idx"]))
                    attrs["nodes_modes"].append("BRANCH_LEQ")
                    attrs["nodes_values"].append(float(node["num_threshold"]))
                    attrs["nodes_truenodeids"].append(int(node["left"]))
                    attrs["nodes_falsenodeids"].append(int(node["right"]))
            tree_id += 1
    node = helper.make_node("TreeEnsembleRegressor", ["features"], ["log_ratios"], domain="ai.onnx.ml",
                            n_targets=len(models), base_values=base_values, aggregate_function="SUM",
                            post_transform="NONE", **attrs)
    graph = helper.make_graph(
        [node], "fedflow_throughput_predictor",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("log_ratios", TensorProto.FLOAT, [None, len(models)])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
                              producer_name="fedflow models/train.py")
    # IR 8 is what onnxruntime 1.16+ reads; keep it so older runtimes still load the file.
    model.ir_version = 8
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())
