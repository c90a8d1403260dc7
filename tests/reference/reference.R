# Independent R reference numbers for evalkit's outcome estimators.
#
# How to regenerate (from the project root):
#   1. python tests/reference/make_datasets.py      # writes tests/reference/datasets/*.csv
#   2. Rscript tests/reference/reference.R           # writes tests/reference/reference.json
#
# Optional: REF_DATASETS="few_clusters,two_arms" Rscript tests/reference/reference.R
# restricts the run to some datasets (the other entries of an existing
# reference.json are then kept as they are).
#
# R packages used: lme4, lmerTest, pbkrtest, clubSandwich, estimatr, geepack, jsonlite.
# Every model uses complete cases on the variables of that model only; the number of
# rows and clusters each model used is written next to its numbers ("n", "n_clusters").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(clubSandwich)
  library(estimatr)
  library(geepack)
  library(jsonlite)
})

ref_dir <- file.path("tests", "reference")
data_dir <- file.path(ref_dir, "datasets")
out_path <- file.path(ref_dir, "reference.json")
if (!dir.exists(data_dir)) stop("run from the project root (tests/reference/datasets not found)")

all_datasets <- c("national", "few_clusters", "missing", "two_arms", "unequal")
sel <- Sys.getenv("REF_DATASETS", "")
datasets <- if (nzchar(sel)) strsplit(sel, ",")[[1]] else all_datasets
datasets <- intersect(datasets, all_datasets)   # REF_DATASETS=none: only the extra blocks

skipped <- list()
timings <- list()

run_model <- function(dataset, model, expr) {
  t0 <- proc.time()[["elapsed"]]
  res <- tryCatch(
    withCallingHandlers(force(expr), warning = function(w) {
      message(sprintf("  [%s/%s] warning: %s", dataset, model, conditionMessage(w)))
      invokeRestart("muffleWarning")
    }),
    error = function(e) {
      skipped[[length(skipped) + 1]] <<- list(dataset = dataset, model = model,
                                              error = conditionMessage(e))
      message(sprintf("  [%s/%s] SKIPPED: %s", dataset, model, conditionMessage(e)))
      NULL
    }
  )
  timings[[paste(dataset, model, sep = "/")]] <<- round(proc.time()[["elapsed"]] - t0, 2)
  message(sprintf("  %s/%s done (%.1fs)", dataset, model, proc.time()[["elapsed"]] - t0))
  res
}

num <- function(x) unname(as.numeric(x))

read_dataset <- function(name) {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")),
                stringsAsFactors = FALSE, check.names = FALSE)
  arms <- sort(unique(d$arm))
  d$arm <- factor(d$arm, levels = c("Control", setdiff(arms, "Control")))
  d$region <- factor(d$region, levels = sort(unique(d$region)))
  d
}

cc <- function(d, vars) {
  out <- d[stats::complete.cases(d[, vars]), , drop = FALSE]
  out <- droplevels(out)
  # keep Control as reference even after droplevels
  out$arm <- stats::relevel(out$arm, ref = "Control")
  out
}

arm_names <- function(d) setdiff(levels(d$arm), "Control")

size_info <- function(d) list(n = nrow(d), n_clusters = length(unique(d$pdu)))

# ---------------------------------------------------------------------------------
# Mixed model (REML) with Satterthwaite / Kenward-Roger df (lmerTest)
# ---------------------------------------------------------------------------------
fit_mixed <- function(d) {
  dd <- cc(d, c("y", "arm", "region", "x1", "pdu"))
  fit <- lmerTest::lmer(y ~ arm + region + x1 + (1 | pdu), data = dd, REML = TRUE)
  list(fit = fit, data = dd)
}

mixed_arms <- function(fit, arms, ddf) {
  co <- summary(fit, ddf = ddf)$coefficients
  res <- list()
  for (a in arms) {
    r <- co[paste0("arm", a), ]
    res[[a]] <- list(estimate = num(r["Estimate"]), se = num(r["Std. Error"]),
                     df = num(r["df"]), statistic = num(r["t value"]),
                     p_value = num(r["Pr(>|t|)"]))
  }
  res
}

mixed_block <- function(m, arms) {
  vc <- as.data.frame(lme4::VarCorr(m$fit))
  c(size_info(m$data),
    list(arms = mixed_arms(m$fit, arms, "Satterthwaite"),
         sigma2_cluster = num(vc$vcov[vc$grp == "pdu"]),
         sigma2_resid = num(vc$vcov[vc$grp == "Residual"]),
         reml_loglik = num(logLik(m$fit)),
         reml_criterion = num(lme4::REMLcrit(m$fit))))
}

mixed_kr_block <- function(m, arms) {
  c(size_info(m$data), list(arms = mixed_arms(m$fit, arms, "Kenward-Roger")))
}

null_block <- function(d) {
  dd <- cc(d, c("y", "pdu"))
  fit <- lme4::lmer(y ~ 1 + (1 | pdu), data = dd, REML = TRUE)
  vc <- as.data.frame(lme4::VarCorr(fit))
  s2c <- num(vc$vcov[vc$grp == "pdu"])
  s2e <- num(vc$vcov[vc$grp == "Residual"])
  c(size_info(dd), list(sigma2_cluster = s2c, sigma2_resid = s2e, icc = s2c / (s2c + s2e)))
}

# ---------------------------------------------------------------------------------
# OLS with cluster-robust SEs (clubSandwich)
# ---------------------------------------------------------------------------------
ols_data <- function(d) cc(d, c("y", "arm", "region", "x1", "pdu"))

cr2_block <- function(d, arms) {
  dd <- ols_data(d)
  fit <- lm(y ~ arm + region + x1, data = dd)
  V <- clubSandwich::vcovCR(fit, cluster = dd$pdu, type = "CR2")
  ct <- as.data.frame(clubSandwich::coef_test(fit, vcov = V, test = "Satterthwaite"))
  res <- list()
  for (a in arms) {
    r <- ct[ct$Coef == paste0("arm", a), ]
    res[[a]] <- list(estimate = num(r$beta), se = num(r$SE), df = num(r$df_Satt),
                     statistic = num(r$tstat), p_value = num(r$p_Satt))
  }
  w <- clubSandwich::Wald_test(fit, constraints = clubSandwich::constrain_zero(paste0("arm", arms)),
                               vcov = V, test = "HTZ")
  c(size_info(dd),
    list(arms = res,
         htz = list(Fstat = num(w$Fstat), df_num = num(w$df_num),
                    df_denom = num(w$df_denom), p_val = num(w$p_val), delta = num(w$delta))))
}

cr1_block <- function(d, arms) {
  dd <- ols_data(d)
  fit <- lm(y ~ arm + region + x1, data = dd)
  V <- clubSandwich::vcovCR(fit, cluster = dd$pdu, type = "CR1S")
  ct <- as.data.frame(clubSandwich::coef_test(fit, vcov = V, test = "naive-t"))
  res <- list()
  for (a in arms) {
    r <- ct[ct$Coef == paste0("arm", a), ]
    res[[a]] <- list(estimate = num(r$beta), se = num(r$SE), df = num(r$df_t),
                     statistic = num(r$tstat), p_value = num(r$p_t))
  }
  c(size_info(dd),
    list(arms = res,
         note = "vcovCR(type = 'CR1S'): G(N-1)/((G-1)(N-p)) Stata small-sample factor; coef_test(test = 'naive-t'): df = G - 1"))
}

lm_robust_block <- function(d, arms) {
  dd <- ols_data(d)
  fit <- estimatr::lm_robust(y ~ arm + region + x1, data = dd, clusters = pdu, se_type = "CR2")
  td <- estimatr::tidy(fit)
  res <- list()
  for (a in arms) {
    r <- td[td$term == paste0("arm", a), ]
    res[[a]] <- list(estimate = num(r$estimate), se = num(r$std.error), df = num(r$df),
                     statistic = num(r$statistic), p_value = num(r$p.value))
  }
  c(size_info(dd), list(arms = res))
}

# ---------------------------------------------------------------------------------
# GEE (geepack), exchangeable working correlation, + Mancl-DeRouen by hand
# ---------------------------------------------------------------------------------
gee_fit <- function(d, outcome, fam) {
  dd <- cc(d, c(outcome, "arm", "region", "x1", "pdu"))
  dd <- dd[order(dd$pdu), , drop = FALSE]
  dd$pdu_id <- as.integer(factor(dd$pdu))
  f <- as.formula(paste(outcome, "~ arm + region + x1"))
  fit <- geepack::geeglm(f, id = pdu_id, data = dd, family = fam, corstr = "exchangeable",
                         control = geepack::geese.control(epsilon = 1e-10, maxit = 100))
  list(fit = fit, data = dd)
}

gee_block <- function(g, arms) {
  fit <- g$fit
  co <- summary(fit)$coefficients
  res <- list()
  for (a in arms) {
    nm <- paste0("arm", a)
    res[[a]] <- list(estimate = num(co[nm, "Estimate"]), se = num(co[nm, "Std.err"]))
  }
  c(size_info(g$data),
    list(arms = res, alpha = num(fit$geese$alpha), scale = num(fit$geese$gamma),
         converged = (fit$geese$error == 0)))
}

# Mancl & DeRouen (2001) bias-corrected sandwich:
#   V_MD = B^{-1} [ sum_i D_i' V_i^{-1} (I - H_ii)^{-1} r_i r_i' (I - H_ii)^{-T} V_i^{-1} D_i ] B^{-1}
#   B = sum_i D_i' V_i^{-1} D_i,   H_ii = D_i B^{-1} D_i' V_i^{-1},
#   D_i = diag(dmu/deta) X_i, V_i = phi A_i^{1/2} R(alpha) A_i^{1/2}, A_i = diag(var(mu)),
#   r_i = y_i - mu_i.  (phi cancels.)  With H_ii = 0 this is the usual robust sandwich,
#   which is checked against geepack's own san.se.
gee_md <- function(g, arms) {
  fit <- g$fit
  dd <- g$data
  X <- model.matrix(fit)
  beta <- coef(fit)
  eta <- drop(X %*% beta)
  fam <- fit$family
  mu <- fam$linkinv(eta)
  dmu <- fam$mu.eta(eta)
  va <- fam$variance(mu)
  y <- fit$y
  alpha <- num(fit$geese$alpha)
  if (length(alpha) == 0) alpha <- 0  # independence working correlation
  phi <- num(fit$geese$gamma)
  ids <- split(seq_len(nrow(X)), dd$pdu_id)
  p <- ncol(X)
  Vinv <- list(); Dl <- list()
  B <- matrix(0, p, p)
  for (k in seq_along(ids)) {
    i <- ids[[k]]
    m <- length(i)
    R <- matrix(alpha, m, m); diag(R) <- 1
    sa <- sqrt(va[i])
    Vi <- phi * (sa %o% sa) * R
    Vinv[[k]] <- solve(Vi)
    Dl[[k]] <- dmu[i] * X[i, , drop = FALSE]
    B <- B + crossprod(Dl[[k]], Vinv[[k]] %*% Dl[[k]])
  }
  Binv <- solve(B)
  M0 <- matrix(0, p, p); M1 <- matrix(0, p, p)
  for (k in seq_along(ids)) {
    i <- ids[[k]]
    D <- Dl[[k]]; W <- Vinv[[k]]
    r <- y[i] - mu[i]
    H <- D %*% Binv %*% crossprod(D, W)
    u0 <- crossprod(D, W %*% r)
    ra <- solve(diag(length(i)) - H, r)
    u1 <- crossprod(D, W %*% ra)
    M0 <- M0 + u0 %*% t(u0)
    M1 <- M1 + u1 %*% t(u1)
  }
  V0 <- Binv %*% M0 %*% Binv
  V1 <- Binv %*% M1 %*% Binv
  dimnames(V0) <- dimnames(V1) <- list(colnames(X), colnames(X))
  geepack_V <- fit$geese$vbeta
  check <- max(abs(sqrt(diag(V0)) - sqrt(diag(geepack_V))) / sqrt(diag(geepack_V)))
  res <- list()
  for (a in arms) {
    nm <- paste0("arm", a)
    res[[a]] <- list(se = num(sqrt(V1[nm, nm])), se_uncorrected = num(sqrt(V0[nm, nm])))
  }
  c(size_info(dd),
    list(arms = res,
         method = paste("hand-written in R (clubSandwich", as.character(packageVersion("clubSandwich")),
                        "has no vcovCR method for geeglm): Mancl & DeRouen (2001) (I - H_ii)^{-1}",
                        "residual correction, H_ii = D_i B^{-1} D_i' V_i^{-1}, exchangeable working",
                        "correlation and scale from the geeglm fit; no extra G/(G-p) factor"),
         max_rel_diff_uncorrected_vs_geepack = num(check)))
}

# Cross-check of gee_md(): with an independence working correlation the Mancl-DeRouen
# correction is clubSandwich's CR3 for the corresponding glm.  Returns the largest
# relative difference over all coefficients.  Also records what vcovCR() does with a
# geeglm object in this clubSandwich version.
md_crosscheck <- function(d, arms) {
  dd <- cc(d, c("y_bin", "arm", "region", "x1", "pdu"))
  dd <- dd[order(dd$pdu), , drop = FALSE]
  dd$pdu_id <- as.integer(factor(dd$pdu))
  gi <- geepack::geeglm(y_bin ~ arm + region + x1, id = pdu_id, data = dd, family = binomial,
                        corstr = "independence",
                        control = geepack::geese.control(epsilon = 1e-10, maxit = 100))
  mdi <- gee_md(list(fit = gi, data = dd), arms)
  g <- glm(y_bin ~ arm + region + x1, data = dd, family = binomial,
           control = glm.control(epsilon = 1e-12, maxit = 100))
  V3 <- as.matrix(clubSandwich::vcovCR(g, cluster = dd$pdu, type = "CR3"))
  se3 <- sqrt(diag(V3))[paste0("arm", arms)]
  semd <- sapply(mdi$arms, function(a) a$se)
  ge <- gee_fit(d, "y_bin", binomial)
  direct <- tryCatch({
    clubSandwich::vcovCR(ge$fit, cluster = ge$data$pdu, type = "CR3")
    "vcovCR(geeglm) ran (dispatches to vcovCR.glm, ignores the working correlation) - not used"
  }, error = function(e) paste("vcovCR(geeglm, type = 'CR3') fails:", conditionMessage(e)))
  list(independence_md_vs_clubSandwich_glm_CR3_max_rel_diff = num(max(abs(semd - se3) / se3)),
       clubSandwich_on_geeglm = direct)
}

# ---------------------------------------------------------------------------------
# Design-based difference in means (estimatr) and IV (CACE) with CR2
# ---------------------------------------------------------------------------------
dim_block <- function(d, arms) {
  res <- list()
  for (a in arms) {
    dd <- cc(d[d$arm %in% c("Control", a), ], c("y", "arm", "region", "pdu"))
    dd$arm_c <- as.character(dd$arm)
    both <- tapply(dd$arm_c, as.character(dd$region), function(v) all(c("Control", a) %in% v))
    keep <- names(both)[both]
    dd <- dd[as.character(dd$region) %in% keep, , drop = FALSE]
    dm <- estimatr::difference_in_means(y ~ arm_c, data = dd, blocks = region, clusters = pdu,
                                        condition1 = "Control", condition2 = a)
    td <- estimatr::tidy(dm)
    res[[a]] <- list(estimate = num(td$estimate), se = num(td$std.error), df = num(td$df),
                     statistic = num(td$statistic), p_value = num(td$p.value),
                     n = nrow(dd), n_clusters = length(unique(dd$pdu)),
                     n_blocks = length(keep), design = dm$design)
  }
  list(arms = res,
       note = paste("rows of the arm and Control only, complete cases on y; blocks = regions",
                    "restricted to regions that contain at least one PDU of BOTH the arm and Control",
                    "(after dropping missing y)"))
}

iv_block <- function(d, arms) {
  res <- list()
  for (a in arms) {
    dd <- cc(d[d$arm %in% c("Control", a), ], c("y", "completed", "arm", "region", "x1", "pdu"))
    dd$treat <- as.integer(as.character(dd$arm) == a)
    fit <- estimatr::iv_robust(y ~ completed + region + x1 | treat + region + x1,
                               data = dd, clusters = pdu, se_type = "CR2")
    td <- estimatr::tidy(fit)
    r <- td[td$term == "completed", ]
    res[[a]] <- list(estimate = num(r$estimate), se = num(r$std.error), df = num(r$df),
                     statistic = num(r$statistic), p_value = num(r$p.value),
                     n = nrow(dd), n_clusters = length(unique(dd$pdu)))
  }
  res
}

# ---------------------------------------------------------------------------------
# Extra paths (issue 12): PDU-level outcomes, three-level model, categorical covariates,
# and what R refuses. Datasets from tests/reference/make_extra_datasets.py.
# ---------------------------------------------------------------------------------
read_extra <- function(name) {
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")), stringsAsFactors = FALSE,
                check.names = FALSE)
  arms <- sort(unique(d$arm))
  d$arm <- factor(d$arm, levels = c("Control", setdiff(arms, "Control")))
  d$region <- factor(d$region, levels = sort(unique(d$region)))
  d
}

tidy_arms <- function(td, arms) {
  res <- list()
  for (a in arms) {
    r <- td[td$term == paste0("arm", a), ]
    res[[a]] <- list(estimate = num(r$estimate), se = num(r$std.error), df = num(r$df),
                     statistic = num(r$statistic), p_value = num(r$p.value))
  }
  res
}

pdu_level_block <- function() {
  d <- read_extra("pdu_level")
  arms <- arm_names(d)
  hc2 <- estimatr::lm_robust(y ~ arm + region + x1, data = d, se_type = "HC2")
  dims <- list()
  for (a in arms) {
    dd <- d[d$arm %in% c("Control", a), , drop = FALSE]
    dd$arm_c <- as.character(dd$arm)
    both <- tapply(dd$arm_c, as.character(dd$region), function(v) all(c("Control", a) %in% v))
    keep <- names(both)[both]
    dd <- dd[as.character(dd$region) %in% keep, , drop = FALSE]
    dm <- estimatr::difference_in_means(y ~ arm_c, data = dd, blocks = region,
                                        condition1 = "Control", condition2 = a)
    td <- estimatr::tidy(dm)
    dims[[a]] <- list(estimate = num(td$estimate), se = num(td$std.error), df = num(td$df),
                      p_value = num(td$p.value), n = nrow(dd), n_blocks = length(keep),
                      design = dm$design)
  }
  list(n = nrow(d), hc2 = c(list(call = "lm_robust(y ~ arm + region + x1, se_type = 'HC2')"),
                            list(arms = tidy_arms(estimatr::tidy(hc2), arms))),
       dim = list(call = "difference_in_means(y ~ arm, blocks = region), no clusters",
                  arms = dims))
}

three_level_block <- function() {
  d <- read_extra("three_level")
  arms <- arm_names(d)
  ctrl <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  fit <- lmerTest::lmer(y ~ arm + region + x1 + (1 | pdu / pod), data = d, REML = TRUE,
                        control = ctrl)
  vc <- as.data.frame(lme4::VarCorr(fit))
  c(list(n = nrow(d), n_pdu = length(unique(d$pdu)), n_pod = length(unique(d$pod)),
         call = "lmerTest::lmer(y ~ arm + region + x1 + (1 | pdu/pod), REML = TRUE), bobyqa rhoend 1e-12",
         arms = mixed_arms(fit, arms, "Satterthwaite"),
         sigma2_pdu = num(vc$vcov[vc$grp == "pdu"]),
         sigma2_pod = num(vc$vcov[vc$grp == "pod:pdu"]),
         sigma2_resid = num(vc$vcov[vc$grp == "Residual"]),
         reml_criterion = num(lme4::REMLcrit(fit))))
}

categorical_block <- function() {
  d <- read_dataset("few_clusters")
  d$band <- factor(ifelse(d$x2 < 45, "low", ifelse(d$x2 < 55, "mid", "high")))
  dd <- cc(d, c("y", "arm", "region", "x1", "band", "pdu"))
  arms <- arm_names(dd)
  fit <- lm(y ~ arm + region + x1 + band, data = dd)
  V <- clubSandwich::vcovCR(fit, cluster = dd$pdu, type = "CR2")
  ct <- as.data.frame(clubSandwich::coef_test(fit, vcov = V, test = "Satterthwaite"))
  cr2 <- list()
  for (nm in c(paste0("arm", arms), paste0("band", levels(dd$band)[-1]))) {
    r <- ct[ct$Coef == nm, ]
    cr2[[nm]] <- list(estimate = num(r$beta), se = num(r$SE), df = num(r$df_Satt))
  }
  ifit <- lm(y ~ arm + region + x1 + band + arm:band, data = dd)
  IV <- clubSandwich::vcovCR(ifit, cluster = dd$pdu, type = "CR2")
  ict <- as.data.frame(clubSandwich::coef_test(ifit, vcov = IV, test = "Satterthwaite"))
  inter <- list()
  for (a in arms) for (lv in levels(dd$band)[-1]) {
    r <- ict[ict$Coef == paste0("arm", a, ":band", lv), ]
    inter[[paste0(a, " x band[", lv, "]")]] <- list(estimate = num(r$beta), se = num(r$SE),
                                                   df = num(r$df_Satt), p_value = num(r$p_Satt))
  }
  mfit <- lmerTest::lmer(y ~ arm + region + x1 + band + (1 | pdu), data = dd, REML = TRUE)
  list(n = nrow(dd), reference_level = levels(dd$band)[1], levels = I(levels(dd$band)),
       rule = "band = low if x2 < 45, mid if x2 < 55, else high",
       cr2 = cr2, mixed = mixed_arms(mfit, arms, "Satterthwaite"),
       interaction_cr2 = inter)
}

refusal_block <- function() {
  msg <- function(expr) tryCatch({ force(expr); "fitted" },
                                 error = function(e) conditionMessage(e))
  pdu <- read_extra("pdu_level")
  few <- read_dataset("few_clusters")
  few$one <- "P1"
  list(mixed_one_row_per_cluster = msg(lme4::lmer(y ~ arm + region + x1 + (1 | pdu), data = pdu)),
       mixed_single_cluster = msg(lme4::lmer(y ~ arm + x1 + (1 | one), data = few)))
}

if (file.exists(file.path(data_dir, "pdu_level.csv"))) {
  message("== extra paths")
  extra <- list(pdu_level = run_model("extra", "pdu_level", pdu_level_block()),
                three_level = run_model("extra", "three_level", three_level_block()),
                categorical = run_model("extra", "categorical", categorical_block()),
                refusals = run_model("extra", "refusals", refusal_block()))
}

# ---------------------------------------------------------------------------------
out <- if (nzchar(sel) && file.exists(out_path)) jsonlite::fromJSON(out_path, simplifyVector = FALSE) else list()
old_timings <- if (is.null(out[["_meta"]]$timings_seconds)) list() else out[["_meta"]]$timings_seconds
if (!is.null(out[["_meta"]]$skipped)) {
  # keep skips recorded for datasets not rerun
  skipped <- Filter(function(s) !(s$dataset %in% datasets), out[["_meta"]]$skipped)
}

for (name in datasets) {
  message("== ", name)
  d <- read_dataset(name)
  arms <- arm_names(d)
  res <- list()
  res$n_obs <- list(
    y = nrow(cc(d, c("y", "arm", "region", "x1", "pdu"))),
    y_bin = nrow(cc(d, c("y_bin", "arm", "region", "x1", "pdu"))),
    y_count = nrow(cc(d, c("y_count", "arm", "region", "x1", "pdu")))
  )
  res$n_clusters <- length(unique(d$pdu))
  res$arms <- I(arms)
  m <- run_model(name, "mixed_fit", fit_mixed(d))
  if (!is.null(m)) {
    res$mixed <- run_model(name, "mixed", mixed_block(m, arms))
    res$mixed_kr <- run_model(name, "mixed_kr", mixed_kr_block(m, arms))
  }
  res$null_model <- run_model(name, "null_model", null_block(d))
  res$cr2 <- run_model(name, "cr2", cr2_block(d, arms))
  res$cr1 <- run_model(name, "cr1", cr1_block(d, arms))
  gb <- run_model(name, "gee_binomial_fit", gee_fit(d, "y_bin", binomial))
  if (!is.null(gb)) {
    res$gee_binomial <- run_model(name, "gee_binomial", gee_block(gb, arms))
    res$gee_binomial_md <- run_model(name, "gee_binomial_md", gee_md(gb, arms))
    if (!is.null(res$gee_binomial_md)) {
      res$gee_binomial_md$crosscheck <- run_model(name, "gee_md_crosscheck", md_crosscheck(d, arms))
    }
  }
  gp <- run_model(name, "gee_poisson_fit", gee_fit(d, "y_count", poisson))
  if (!is.null(gp)) res$gee_poisson <- run_model(name, "gee_poisson", gee_block(gp, arms))
  res$dim <- run_model(name, "dim", dim_block(d, arms))
  res$iv_cr2 <- run_model(name, "iv_cr2", iv_block(d, arms))
  res$lm_cr2_estimatr <- run_model(name, "lm_cr2_estimatr", lm_robust_block(d, arms))
  out[[name]] <- Filter(Negate(is.null), res)
}

pkgs <- c("lme4", "lmerTest", "pbkrtest", "clubSandwich", "estimatr", "geepack", "jsonlite",
          "Matrix", "sandwich")
out[["_meta"]] <- list(
  r_version = R.version.string,
  packages = setNames(lapply(pkgs, function(p) as.character(packageVersion(p))), pkgs),
  generated = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
  skipped = skipped,
  timings_seconds = modifyList(old_timings, timings),
  notes = list(
    n_obs = "complete cases on (outcome, arm, region, x1, pdu) for y / y_bin / y_count",
    per_model = "each model uses complete cases on its own variables; see its n / n_clusters",
    factors = "arm: Control is the reference level, other levels sorted; region: sorted levels (first is the reference)"
  )
)
out <- out[c("_meta", intersect(c(all_datasets, setdiff(names(out), "_meta")), names(out)))]
out <- out[!duplicated(names(out))]
if (exists("extra")) out[["extra"]] <- Filter(Negate(is.null), extra)
jsonlite::write_json(out, out_path, digits = NA, auto_unbox = TRUE, pretty = TRUE)
message("wrote ", out_path)
