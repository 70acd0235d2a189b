# The jobs: dataset, ML-WGAN shards, one training job per (configuration, seed), the
# notebooks (01-03, 04 once per configuration showing its seeds, 05-07), the tables and the
# reports. Each job is one `python -m lib.pipeline.jobs` process (lib/pipeline/jobs.py) with a benchmark file
# under <results>/benchmarks/<rule>/.
import ast
import re
import shlex

JOB = (f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
       f"{shlex.quote(PY)} -m lib.pipeline.jobs")
OPTS = f"--results {shlex.quote(str(RESULTS))} --params {shlex.quote(str(PSET.path))}" + (
    f" --timeout {int(config['timeout'])}" if config.get("timeout") else "")
DATASET = str(DATA / "train.json")
AUGMENT = "03_wgan_augmentation"
SHARD_FILES = [str(RESULTS / "augment" / f"shard-{i}-of-{SHARDS}.json") for i in range(SHARDS)]
TARGETS = [executed(n) for n in PARAMS]
if TRAIN:
    TARGETS += [str(RESULTS / "tables" / "main.csv")]


def bench(rule, name):
    return str(RESULTS / "benchmarks" / rule / f"{name}.tsv")


def as_json(mapping):
    return json.dumps(mapping, sort_keys=True)


def notebook_inputs(wc):
    stem = wc.name.split("__")[0]  # 04_training__<run>: notebook 04 for one configuration
    nb = str(NOTEBOOKS / f"{stem}.ipynb")
    p = PARAMS[wc.name]
    extra = []
    if KIND[stem] == "augmentation":
        extra = SHARD_FILES
    elif KIND[stem] == "training":
        extra = run_files(p["run_name"])
    elif KIND[stem] == "run":
        extra = run_files(p["run_name"], [p.get("seed", PSET.run_seeds(p["run_name"])[0])])
        extra += [f for r in p.get("compare_runs") or [] for f in run_files(r)]
    elif KIND[stem] == "all-runs":
        extra = [f for r in PSET.runs for f in run_files(r)]
    return {"notebook": nb, "data": DATASET, "lib": sources(nb), "upstream": extra}


def augmented(run):
    return bool(PARAMS[f"04_training__{run}"].get("overrides", {}).get("augmented", False))


def notebook_values(stem, name):
    """What papermill gives notebook ``stem`` for job ``name``: its defaults, then the set's."""
    return {**{k: ast.literal_eval(v) for k, v in DEFAULTS[stem].items()}, **PARAMS[name]}


def train_values(wc):
    """Notebook 04's values for one configuration, for one seed (lib.training.launch.train_seeds)."""
    own = notebook_values("04_training", f"04_training__{wc.run}")
    return as_json({k: own[k] for k in ("run_name", "dataset", "preset", "overrides")}
                   | {"seeds": [int(wc.seed)]})


def augment_values(wc):
    """Notebook 03's WGAN settings (its parameters, else its defaults) and the shard."""
    own = {k: notebook_values(AUGMENT, AUGMENT)[k] for k in ("preset", "seed", "overrides")}
    return as_json({**own, "shard": f"{wc.i}/{wc.n}"})


if DRAWN:
    rule dataset:
        output:
            DATASET,
        params:
            how=as_json(PSET.synth if PSET.synth is not None else PSET.standin),
        benchmark:
            bench("dataset", DATA.name)
        shell:
            "{JOB} dataset {DATA:q} {OPTS}"


rule notebook:
    input: unpack(notebook_inputs)
    output: executed("{name}")
    params: values=lambda wc: as_json(PARAMS[wc.name])
    wildcard_constraints: name="|".join(map(re.escape, PARAMS)) or "-"
    threads: THREADS
    resources: **job_resources("notebook")
    benchmark: bench("notebook", "{name}")
    shell: "{JOB} notebook {input.notebook:q} {output:q} --parameters {params.values:q} "
           "--threads {threads} {OPTS}"


rule augment:
    input: data=DATASET, lib=sources("lib.data.augmentation")
    output: str(RESULTS / "augment" / "shard-{i}-of-{n}.json")
    params: values=augment_values
    threads: THREADS
    resources: **job_resources("augment", gpu=1)
    benchmark: bench("augment", "shard-{i}-of-{n}")
    shell: "{JOB} augment {DATA:q} {output:q} --parameters {params.values:q} "
           "--threads {threads} --gpus {resources.gpu} --gpu-count {GPU_COUNT} {OPTS}"


rule train:  # notebook 04's training, one seed; under torchrun when the run asks for gpus > 1
    input:
        data=DATASET, lib=sources("lib.training.launch") if TRAIN else [],
        augmentation=lambda wc: [executed(AUGMENT)] if augmented(wc.run) else [],
    output: [str(RESULTS / "runs" / "{run}" / "seed-{seed}" / f) for f in RUN_FILES]
    params: values=train_values
    wildcard_constraints: seed=r"\d+"
    threads: THREADS
    resources: **job_resources("train", gpu=lambda wc: RUN_GPUS[wc.run])
    benchmark: bench("train", "{run}__seed-{seed}")
    shell: "{JOB} train --parameters {params.values:q} --threads {threads} --gpus {resources.gpu} "
           "--gpu-count {GPU_COUNT} {OPTS}"


rule tables:
    input: runs=[f for r in PSET.runs for f in run_files(r)], lib=sources("lib.analysis.tables")
    output: str(RESULTS / "tables" / "main.csv"), str(RESULTS / "tables" / "ablations.csv")
    params: values=as_json({"runs": list(PSET.runs)})
    benchmark: bench("tables", "tables")
    shell: "{JOB} tables --parameters {params.values:q} {OPTS}"


rule reports:
    input: TARGETS, lib=sources("lib.pipeline.render")
    output: str(RESULTS / "reports" / "index.html")
    params: values=as_json({"notebooks": list(PARAMS), "set": PSET.name})
    benchmark: bench("reports", "reports")
    shell: "{JOB} reports {DATA:q} --parameters {params.values:q} {OPTS}"
