"""The pre-specified analysis plan, run end to end.

Takes the register and an outcomes file, loads and joins the data (`data`), fits every
pre-specified model and effect size (`compute`) into a `PlanResult` (`result`, each model
with its typed role), and writes results and the HTML report (`outputs`, `report`, `plots`);
`run.run_plan` does all of it. Imports flow one way: data -> compute -> result <- outputs.
"""
