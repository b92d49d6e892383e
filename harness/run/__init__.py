"""Running one configuration: data, models, input pipelines, training, attacks and the final-checkpoint
diagnostics. The only rooms that touch a device."""
