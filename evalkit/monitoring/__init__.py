"""Stage 4: the learning platform's export in, uptake and deviations out.

Takes a bookings/completions export and the register, checks each booking against the
person's group and window (`bookings`) and writes the monitoring page and workbook (`report`).
"""
