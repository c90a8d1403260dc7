"""The pre-specified analysis plan, run end to end.

Takes the register and an outcomes file, loads and joins the data (`data`), fits every
pre-specified model and effect size (`compute`), and writes results and the HTML report
(`outputs`, `report`, `plots`).
"""
