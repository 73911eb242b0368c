"""The Lightning layer (the only one importing Lightning): modules, data modules, the writer.

Import the submodules themselves (``lit_ip.lightning.sampling_module`` ...); nothing is
imported here so that ``lit_ip.lightning.figures`` stays free of Lightning."""
__all__ = ["sampling_module", "datamodules", "writer", "result_logger", "training", "train_data", "figures"]
