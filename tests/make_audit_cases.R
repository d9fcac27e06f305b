# Reference cases for metapool audit (tests/test_audit.py).
# usage: Rscript tests/make_audit_cases.R tests/audit_cases.json
#
# For several tables (metadat datasets and small synthetic ones: proportions, two-arm counts,
# two-group means, pre/post means; some with a zero cell) and several known models (measures,
# tau2 estimators, z and knha, continuity corrections, MH/Peto, GLMM), metafor computes the pooled
# estimate and CI -- back-transformed as predict(..., transf=) reports them -- and the case stores
# the table, the generating model, the unrounded numbers and the numbers rounded to 2 and 3
# decimals (as printed strings).  Subset cases pool only some rows of the stored table; missing
# cases pool the stored table plus one hidden row (stored separately, not in the table).
suppressMessages({library(metafor); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]

ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5)
num <- function(x) unname(as.numeric(x))
fmt <- function(x, d) formatC(x, format = "f", digits = d)

cases <- list()

esc <- function(family, d, measure, add, to, vtype = "LS", r = 0.5) {
  switch(family,
    proportion = escalc(measure = measure, xi = events, ni = total, data = d, add = add, to = to, vtype = vtype),
    "two-arm" = escalc(measure = measure, ai = events_treat, n1i = total_treat, ci = events_ctrl,
                       n2i = total_ctrl, data = d, add = add, to = to),
    continuous = escalc(measure = measure, m1i = mean_treat, sd1i = sd_treat, n1i = n_treat,
                        m2i = mean_ctrl, sd2i = sd_ctrl, n2i = n_ctrl, data = d),
    prepost = if (measure == "SMCR") {
      escalc(measure = measure, m1i = mean_post, m2i = mean_pre, sd1i = sd_pre, ni = n, ri = rep(r, nrow(d)), data = d)
    } else {
      escalc(measure = measure, m1i = mean_post, m2i = mean_pre, sd1i = sd_post, sd2i = sd_pre, ni = n,
             ri = rep(r, nrow(d)), data = d)
    })
}

transf_for <- function(measure) {
  switch(measure, PLO = transf.ilogit, PAS = transf.iarcsin, PFT = transf.ipft.hm,
         RR = exp, OR = exp, PETO = exp, NULL)
}

# pooled numbers on the reporting scale, as predict(res, transf=) gives them
reported <- function(res, measure, ni) {
  tf <- transf_for(measure)
  pr <- if (is.null(tf)) predict(res) else if (measure == "PFT")
    predict(res, transf = tf, targs = list(ni = ni)) else predict(res, transf = tf)
  list(estimate = num(pr$pred), ci_lb = num(pr$ci.lb), ci_ub = num(pr$ci.ub), pval = num(res$pval))
}

add_case <- function(name, family, table, model, numbers, rows = NULL, hidden = NULL) {
  printed <- list()
  for (d in c(2, 3)) {
    printed[[as.character(d)]] <- list(estimate = fmt(numbers$estimate, d), ci_lb = fmt(numbers$ci_lb, d),
                                       ci_ub = fmt(numbers$ci_ub, d))
  }
  case <- list(case = name, family = family, table = table, model = model, expected = numbers,
               printed = printed)
  if (!is.null(rows)) case$rows <- rows            # 1-based rows of `table` that were pooled
  if (!is.null(hidden)) case$hidden <- hidden      # the row added to `table` (missing cases)
  cases[[length(cases) + 1]] <<- case
}

# inverse-variance model: escalc + rma(method, test) on rows `rows` (+ optional hidden row)
iv_case <- function(name, family, table, measure, method, test = "z", cc = NULL, vtype = "LS",
                    rows = NULL, hidden = NULL, r = 0.5) {
  d <- if (is.null(rows)) table else table[rows, , drop = FALSE]
  if (!is.null(hidden)) d <- rbind(d[, names(hidden)], as.data.frame(hidden))
  add <- 0.5; to <- "only0"
  if (!is.null(cc)) { if (cc == "none") { add <- 0; to <- "none" } else to <- cc }
  if (is.null(cc) && measure %in% c("PAS", "PFT")) { add <- 0; to <- "none"; cc <- "none" }
  if (is.null(cc) && family %in% c("proportion", "two-arm")) cc <- "only0"
  dat <- esc(family, d, measure, add, to, vtype, r)
  res <- rma(yi, vi, data = dat, method = method, test = test, control = ctrl)
  ni <- if (measure == "PFT") d$total else NULL
  model <- list(measure = measure, method = method, test = test, cc = cc, vtype = vtype)
  if (family == "prepost") model$r <- r
  add_case(name, family, table, model, reported(res, measure, ni), rows, hidden)
}

# ------------------------------------------------------------------------- tables
pritz <- data.frame(study = paste0("pritz", dat.pritz1997$study), events = dat.pritz1997$xi,
                    total = dat.pritz1997$ni)
prop_zero <- data.frame(study = c("A", "B", "C", "D", "E"), events = c(0, 3, 7, 12, 9),
                        total = c(15, 20, 25, 30, 18))
set.seed(20240501)
n16 <- sample(20:120, 16)
prop16 <- data.frame(study = sprintf("s%02d", 1:16), events = rbinom(16, n16, runif(16, 0.6, 0.9)),
                     total = n16)
bcg <- data.frame(study = paste0("bcg", dat.bcg$trial), events_treat = dat.bcg$tpos,
                  total_treat = dat.bcg$tpos + dat.bcg$tneg, events_ctrl = dat.bcg$cpos,
                  total_ctrl = dat.bcg$cpos + dat.bcg$cneg)
arm_zero <- data.frame(study = c("T1", "T2", "T3", "T4"), events_treat = c(0, 2, 5, 8),
                       total_treat = c(20, 25, 30, 40), events_ctrl = c(3, 6, 9, 10),
                       total_ctrl = c(20, 25, 30, 38))
normand <- data.frame(study = dat.normand1999$source, mean_treat = dat.normand1999$m1i,
                      sd_treat = dat.normand1999$sd1i, n_treat = dat.normand1999$n1i,
                      mean_ctrl = dat.normand1999$m2i, sd_ctrl = dat.normand1999$sd2i,
                      n_ctrl = dat.normand1999$n2i)
prepost <- data.frame(study = c("P1", "P2", "P3", "P4", "P5"), mean_pre = c(12.1, 10.4, 14.0, 11.2, 13.5),
                      sd_pre = c(4.2, 3.1, 5.0, 3.8, 4.4), mean_post = c(7.9, 8.1, 8.8, 9.0, 7.2),
                      sd_post = c(3.9, 3.4, 4.1, 3.5, 4.0), n = c(30, 24, 41, 18, 27))

# ------------------------------------------------------------------------- proportions
iv_case("pritz_PR_FE_z", "proportion", pritz, "PR", "FE")
iv_case("pritz_PLO_REML_z", "proportion", pritz, "PLO", "REML")
iv_case("pritz_PAS_DL_knha", "proportion", pritz, "PAS", "DL", "knha")
iv_case("pritz_PFT_ML_z", "proportion", pritz, "PFT", "ML")
iv_case("pritz_PLO_PM_knha", "proportion", pritz, "PLO", "PM", "knha")
iv_case("pritz_PR_SJ_z", "proportion", pritz, "PR", "SJ")
iv_case("pritz_PR_HS_knha", "proportion", pritz, "PR", "HS", "knha")
iv_case("zero_PLO_REML_z_only0", "proportion", prop_zero, "PLO", "REML", "z", cc = "only0")
iv_case("zero_PLO_DL_knha_all", "proportion", prop_zero, "PLO", "DL", "knha", cc = "all")
iv_case("zero_PR_FE_z_if0all", "proportion", prop_zero, "PR", "FE", "z", cc = "if0all")
iv_case("zero_PAS_HE_z", "proportion", prop_zero, "PAS", "HE")
iv_case("zero_PFT_EB_z", "proportion", prop_zero, "PFT", "EB")
iv_case("zero_PR_FE_z_AV", "proportion", prop_zero, "PR", "FE", "z", cc = "none", vtype = "AV")
iv_case("zero_PR_REML_knha_only0", "proportion", prop_zero, "PR", "REML", "knha", cc = "only0")
# GLMM (rma.glmm, nAGQ = 7, as metapool.glmm)
g <- rma.glmm(measure = "PLO", xi = events, ni = total, data = pritz)
add_case("pritz_PLO_GLMM_z", "proportion", pritz, list(measure = "PLO", method = "GLMM", test = "z", cc = "none",
         vtype = "LS"), reported(g, "PLO", NULL))

# subsets of one table (pooled rows listed in `rows`)
iv_case("pritz_sub_PLO_REML_z", "proportion", pritz[1:10, ], "PLO", "REML", rows = c(1, 3, 4, 7))
iv_case("pritz_sub_PR_DL_knha", "proportion", pritz[1:10, ], "PR", "DL", "knha", rows = c(2, 5, 6, 8, 9, 10))
iv_case("prop16_sub_PLO_REML_z", "proportion", prop16, "PLO", "REML", rows = c(2, 4, 5, 9, 12, 13, 16))
iv_case("prop16_sub_PR_DL_knha", "proportion", prop16, "PR", "DL", "knha", rows = c(1, 3, 6, 7, 8, 10, 11, 14, 15))

# missing-study cases: the table plus one hidden row
iv_case("missing_PR_FE_z", "proportion", prop_zero[2:4, ], "PR", "FE",
        hidden = list(study = "hidden", events = 23, total = 61))
iv_case("missing_PLO_DL_z", "proportion", prop_zero[2:4, ], "PLO", "DL",
        hidden = list(study = "hidden", events = 40, total = 97))

# ------------------------------------------------------------------------- two-arm counts
iv_case("bcg_RR_REML_z", "two-arm", bcg, "RR", "REML")
iv_case("bcg_OR_DL_knha", "two-arm", bcg, "OR", "DL", "knha")
iv_case("bcg_RD_FE_z", "two-arm", bcg, "RD", "FE")
iv_case("bcg_RR_PM_z", "two-arm", bcg, "RR", "PM")
iv_case("zero2_OR_DL_z_only0", "two-arm", arm_zero, "OR", "DL", "z", cc = "only0")
iv_case("zero2_RR_HS_knha_all", "two-arm", arm_zero, "RR", "HS", "knha", cc = "all")
iv_case("zero2_RD_REML_z", "two-arm", arm_zero, "RD", "REML")
for (m in c("OR", "RR", "RD")) {
  for (nm in c("bcg", "zero2")) {
    tab <- if (nm == "bcg") bcg else arm_zero
    res <- rma.mh(measure = m, ai = events_treat, n1i = total_treat, ci = events_ctrl, n2i = total_ctrl, data = tab)
    add_case(paste0(nm, "_", m, "_MH"), "two-arm", tab,
             list(measure = m, method = "MH", test = "z", cc = "none", vtype = "LS"), reported(res, m, NULL))
  }
}
for (nm in c("bcg", "zero2")) {
  tab <- if (nm == "bcg") bcg else arm_zero
  res <- rma.peto(ai = events_treat, n1i = total_treat, ci = events_ctrl, n2i = total_ctrl, data = tab)
  add_case(paste0(nm, "_PETO"), "two-arm", tab,
           list(measure = "PETO", method = "PETO", test = "z", cc = "none", vtype = "LS"), reported(res, "PETO", NULL))
}

# ------------------------------------------------------------------------- means
iv_case("normand_SMD_REML_z", "continuous", normand, "SMD", "REML")
iv_case("normand_MD_DL_knha", "continuous", normand, "MD", "DL", "knha")
iv_case("normand_SMD_EB_z", "continuous", normand, "SMD", "EB")
iv_case("normand_MD_HS_z", "continuous", normand, "MD", "HS")
iv_case("prepost_SMCR_REML_z", "prepost", prepost, "SMCR", "REML")
iv_case("prepost_SMCC_DL_knha", "prepost", prepost, "SMCC", "DL", "knha")
iv_case("prepost_MC_FE_z", "prepost", prepost, "MC", "FE")
iv_case("missing_SMCR_FE_z", "prepost", prepost[1:3, ], "SMCR", "FE",
        hidden = list(study = "hidden", mean_pre = 12, sd_pre = 4, mean_post = 8.6, sd_post = 3.7, n = 40))
iv_case("missing_SMD_DL_z", "continuous", normand[1:5, ], "SMD", "DL",
        hidden = list(study = "hidden", mean_treat = 30, sd_treat = 20, n_treat = 25, mean_ctrl = 42,
                      sd_ctrl = 20, n_ctrl = 25))
iv_case("missing_MD_FE_z", "continuous", normand[1:5, ], "MD", "FE",
        hidden = list(study = "hidden", mean_treat = 30, sd_treat = 20, n_treat = 25, mean_ctrl = 42,
                      sd_ctrl = 20, n_ctrl = 25))

meta <- list(metafor = as.character(packageVersion("metafor")),
             metadat = as.character(packageVersion("metadat")), R = R.version.string,
             script = "tests/make_audit_cases.R")
writeLines(toJSON(list(meta = meta, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), out)
cat(length(cases), "cases written to", out, "\n")
