# Peer for `evalkit analyse DATA --model cr2` (bench/analysis.py, issue 13): the same model in R.
# lm(y ~ arm + region + x1) with clubSandwich vcovCR(type = "CR2") and coef_test(test =
# "Satterthwaite"), on the same CSV.  Whole process: Rscript start-up, library load, read, fit.
# Usage: Rscript bench/r_peers/cr2_clubsandwich.R tests/reference/datasets/national.csv
suppressPackageStartupMessages(library(clubSandwich))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(if (length(args)) args[[1]] else "tests/reference/datasets/national.csv")
d$arm <- relevel(factor(d$arm), ref = "Control")
fit <- lm(y ~ arm + region + x1, data = d)
V <- vcovCR(fit, cluster = d$pdu, type = "CR2")
print(coef_test(fit, vcov = V, test = "Satterthwaite")[2:3, ])
