"""A test helper for multi-stage methods: a subclass that keeps a copy of the state at the end of each stage and can
crash at a chosen training step (to test resume)."""


class Interrupted(Exception):
    pass


def recording(method_cls):
    """``recording(AANDMethod)(crash_at=0, **options)``: ``.after[stage]`` holds the state dict at each stage's end;
    the ``crash_at``-th training step (counted from construction) raises :class:`Interrupted`."""

    class Recording(method_cls):
        def __init__(self, crash_at=0, **kw):
            super().__init__(**kw)
            self.crash_at, self.calls, self.after = crash_at, 0, {}

        def training_step(self, batch, optimizers, stage):
            self.calls += 1
            if self.calls == self.crash_at:
                raise Interrupted
            return super().training_step(batch, optimizers, stage)

        def teardown_training(self, stage):
            super().teardown_training(stage)
            self.after[stage.name] = {k: v.clone() for k, v in self.state_dict().items()}

    Recording.__name__ = f"Recording{method_cls.__name__}"
    return Recording
