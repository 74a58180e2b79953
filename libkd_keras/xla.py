"""XLA for the students' training steps: what `run.jit_compile = "auto"` means for each kind of step.

Keras' own "auto" compiles a step with XLA on a GPU and not on a CPU. On a CPU, XLA trained the
DeiT students faster and the ResNet and RedNet teachers slower (the involution taps most; the
measurements: benchmarks/RESULTS.md, "XLA per model family"). So "auto" here turns XLA on for
students trained from stored targets (and baselines) on one device, and for online students
whose teachers label the batches in `tf.data` (on a CPU: `distill/online.py`). Teachers, students
that run the teachers inside their step (online targets on a GPU), and steps spread over several
replicas (`tf.distribute`, not measured) keep Keras' choice. `true` and `false` apply everywhere.

Example:
>>> student_jit_compile("auto", teachers_in_step=False)  # True: XLA for the student step, CPU or GPU
>>> student_jit_compile("auto", teachers_in_step=True)   # "auto": Keras decides
>>> distiller.compile(optimizer=..., jit_compile=student_jit_compile(config.run.jit_compile, in_step))

`distill.train_student` applies it to its `jit_compile` (FitOptions' compile_options, default "auto"), so
the Python API and the pipeline make the same choice.
"""


def student_jit_compile(jit_compile, teachers_in_step=False, replicas=None):
    """`Distiller.compile`'s `jit_compile` for a student step under `run.jit_compile` (True, False, "auto").

    Args:
        jit_compile: bool or "auto". The run's setting.
        teachers_in_step: bool. Whether the step also runs the teachers (`Distiller(teachers=...)`).
        replicas: int or None. Replicas in sync (None: those of the current `tf.distribute` strategy).
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f'`jit_compile` must be true, false or "auto"; got {jit_compile!r}.')
    if jit_compile != "auto":
        return jit_compile
    if replicas is None:
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return "auto" if teachers_in_step or replicas > 1 else True
