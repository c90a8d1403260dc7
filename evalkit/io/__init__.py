"""Reading and writing files, shared by every stage.

Takes paths and pandas frames; gives atomic, formula-safe CSV/XLSX/text writes (`files`), the
streaming XLSX writer (`xlsx`) and table readers that turn file problems into clear errors.
It knows nothing about trials.
"""
