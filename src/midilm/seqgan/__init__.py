"""SeqGAN (Yu et al., AAAI 2017) as its authors' reference code runs it: the LSTM generator,
the CNN discriminator, batched Monte-Carlo roll-outs and Algorithm 1, with the paper's synthetic
oracle experiment and its music task (docs/seqgan.md).

Entry points the DAG runs: `run_oracle_experiment(spec, out_dir)` and
`run_music_task(spec, layout, out_dir)`; `midilm.report.seqgan` builds T6 from their outputs.
"""
