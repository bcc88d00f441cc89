"""The pipeline's configuration: one TOML file, overlaid by environment variables, then by flags.

Parsed once into a typed, frozen `PipelineConfig` and passed down; nothing else reads os.environ.
"""
from conf.loader import (
    ConfigError,
    GeneratorConfig,
    JobConfig,
    KafkaConfig,
    MongoConfig,
    PipelineConfig,
    StackConfig,
    load_config,
)

__all__ = [
    "ConfigError",
    "GeneratorConfig",
    "JobConfig",
    "KafkaConfig",
    "MongoConfig",
    "PipelineConfig",
    "StackConfig",
    "load_config",
]
