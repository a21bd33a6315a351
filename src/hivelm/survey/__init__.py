"""Psychometric surveys of community models (paper section 6): declarative instruments, prompts and answers
(option log-likelihoods or sampled text), and pure scoring.

    from hivelm.survey.answers import administer
    from hivelm.survey.instrument import load_instrument
    from hivelm.survey.scoring import summarise
    instrument = load_instrument(cfg.survey.instrument, cfg.survey.instrument_text, cfg.survey.criterion_params)
    result = administer(model, tokenizer, instrument, personas, "keto cooking", cfg.survey, community="keto")
    report = summarise(instrument, result, cfg.survey.statistics)

Modules: instrument (format, loader, validator), parse (free text -> answer or UNPARSEABLE), answers
(prompts, loglik, generate, administer), scoring (criteria, majority, summaries, contrasts; pure), collected
(`hivelm survey-score`: answers collected elsewhere). The package imports nothing itself, so a stage that only scores (summarize) does
not depend on the model code (its dvc.yaml deps are its import closure).
"""
