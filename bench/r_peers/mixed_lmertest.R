# Peer for evalkit's mixed model (evalkit.analysis.mixed.fit_mixed; bench/analysis.py, issue 13):
# lmerTest::lmer(y ~ arm + region + x1 + (1 | pdu), REML = TRUE) and its Satterthwaite summary
# (the same model, df and joint F test evalkit reports), on the same CSV.
# Prints the in-process median seconds of REPS fits (after one warm-up) as "r_fit_seconds <s>",
# so bench/analysis.py can set it beside evalkit's in-process figure; the whole Rscript
# (start-up, library load, read, fits) is timed from outside.
# Usage: Rscript bench/r_peers/mixed_lmertest.R [CSV] [REPS]
suppressPackageStartupMessages(library(lmerTest))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(if (length(args) >= 1) args[[1]] else "tests/reference/datasets/national.csv")
reps <- if (length(args) >= 2) as.integer(args[[2]]) else 5L   # 0: one fit, no timing
d$arm <- relevel(factor(d$arm), ref = "Control")
d <- d[complete.cases(d[, c("y", "arm", "region", "x1", "pdu")]), ]
one_fit <- function() {
  fit <- lmerTest::lmer(y ~ arm + region + x1 + (1 | pdu), data = d, REML = TRUE)
  list(coef = summary(fit, ddf = "Satterthwaite")$coefficients,
       joint = anova(fit, ddf = "Satterthwaite"))
}
out <- one_fit()                                   # warm-up (and the printed result)
times <- vapply(seq_len(reps), function(i) system.time(one_fit())[["elapsed"]], numeric(1))
print(out$coef[grep("^arm", rownames(out$coef)), ])
cat(sprintf("r_fit_seconds %.4f\n", median(times)))
