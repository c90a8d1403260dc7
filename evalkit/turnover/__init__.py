"""Stage 3: changes to the workforce after the seal.

Takes new starters and transfers and gives joiners their concealed, pre-drawn group and
transfers their record, each logged as an event in the register (`events`).
"""
