# Reference values from R metafor for small-study-effect tests and the binomial-normal GLMM.
# usage: Rscript tests/make_bias_cases.R tests/metafor_cases_bias.json
# Layout as tests/metafor_cases.json (the same layout as metafor_cases.json: conftest.py describes it); method is "bias" or "GLMM".
suppressMessages({library(metafor); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) >= 1) args[1] else "metafor_cases_bias.json"

# tight tolerances so the references carry the exact solution of the iterative estimators
ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000, stepadj = 0.5)
num <- function(x) if (is.null(x)) NULL else unname(as.numeric(x))

cases <- list()
add_case <- function(name, type, rows, measure, method, expected) {
  cases[[length(cases) + 1]] <<- list(case = name, type = type, measure = measure, method = method,
                                      test = "z", level = 0.95, rows = rows, expected = expected)
}

escalc_for <- function(type, d, measure) {
  switch(type,
    proportion = escalc(measure = measure, xi = events, ni = total, data = d),
    binary = escalc(measure = measure, ai = events_treat, n1i = total_treat, ci = events_ctrl,
                    n2i = total_ctrl, data = d),
    generic = escalc(measure = "GEN", yi = yi, vi = vi, data = d))
}

reg_summary <- function(rt) {
  e <- list(stat = num(rt$zval), pval = num(rt$pval), df = num(rt$dfs),
            estimate = num(rt$est), ci_lb = num(rt$ci.lb), ci_ub = num(rt$ci.ub))
  if (inherits(rt$fit, "rma")) {
    e$tau2 <- num(rt$fit$tau2)
    e$slope <- num(rt$fit$beta[2]); e$slope_se <- num(rt$fit$se[2])
  } else {
    e$slope <- num(coef(rt$fit)[2])
  }
  e
}

tf_summary <- function(fit, method, estimator, side) {
  tf <- if (is.null(side)) trimfill(fit, estimator = estimator, control = ctrl)
        else trimfill(fit, estimator = estimator, side = side, control = ctrl)
  list(fit = method, estimator = estimator, side_arg = if (is.null(side)) NULL else side,
       side = tf$side, k0 = num(tf$k0), se_k0 = num(tf$se.k0), p_k0 = num(tf$p.k0),
       k = tf$k, estimate = num(tf$b), se = num(tf$se), stat = num(tf$zval), pval = num(tf$pval),
       ci_lb = num(tf$ci.lb), ci_ub = num(tf$ci.ub), tau2 = num(tf$tau2),
       yi = num(tf$yi), vi = num(tf$vi), fill = as.logical(tf$fill))
}

bias_case <- function(prefix, type, d, measure) {
  es <- escalc_for(type, d, measure)
  fe <- rma(yi, vi, data = es, method = "FE")
  re <- rma(yi, vi, data = es, method = "REML", control = ctrl)
  e <- list(yi = num(es$yi), vi = num(es$vi), ni = num(attr(es$yi, "ni")), k = fe$k)
  e$egger_lm <- reg_summary(regtest(fe, model = "lm"))
  e$egger_rma_FE <- reg_summary(regtest(fe, model = "rma"))
  e$egger_rma_REML <- reg_summary(regtest(re, model = "rma"))
  if (!is.null(attr(es$yi, "ni"))) {
    e$peters_lm <- reg_summary(regtest(fe, model = "lm", predictor = "ninv"))
    e$peters_rma_FE <- reg_summary(regtest(fe, model = "rma", predictor = "ninv"))
    e$peters_rma_REML <- reg_summary(regtest(re, model = "rma", predictor = "ninv"))
  }
  rk <- ranktest(fe)
  e$begg <- list(tau = num(rk$tau), pval = num(rk$pval))
  tfs <- list()
  for (m in c("FE", "REML")) for (est in c("L0", "R0")) for (s in list(NULL, "left", "right")) {
    fit <- if (m == "FE") fe else re
    tfs[[length(tfs) + 1]] <- tf_summary(fit, m, est, s)
  }
  e$trimfill <- tfs
  add_case(paste0(prefix, "_", measure, "_bias"), type, d, measure, "bias", e)
}

glmm_case <- function(prefix, d, nAGQ = 7, tight = FALSE) {
  con <- if (tight) list(glmerCtrl = list(optimizer = "bobyqa", tolPwrss = 1e-10,
                                         optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
         else list()
  res <- rma.glmm(measure = "PLO", xi = events, ni = total, data = d, nAGQ = nAGQ, control = con)
  pr <- predict(res, transf = transf.ilogit)
  name <- sprintf("%s_PLO_GLMM_AGQ%d%s", prefix, nAGQ, if (tight) "_tight" else "")
  add_case(name, "proportion", d, "PLO", "GLMM", list(
    nAGQ = nAGQ, settings = if (tight) "tight" else "default",
    k = res$k, estimate = num(res$b), se = num(res$se), stat = num(res$zval), pval = num(res$pval),
    ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), tau2 = num(res$tau2),
    loglik = num(res$fit.stats["ll", "ML"]), I2 = num(res$I2), H2 = num(res$H2),
    QE_Wld = num(res$QE.Wld), QEp_Wld = num(res$QEp.Wld),
    QE_LRT = num(res$QE.LRT), QEp_LRT = num(res$QEp.LRT),
    back = list(estimate = num(pr$pred), ci_lb = num(pr$ci.lb), ci_ub = num(pr$ci.ub))))
}

p <- dat.pritz1997; pritz <- data.frame(study = p$authors, events = p$xi, total = p$ni)
b <- dat.bcg
bcg <- data.frame(study = paste(b$author, b$year), events_treat = b$tpos, total_treat = b$tpos + b$tneg,
                  events_ctrl = b$cpos, total_ctrl = b$cpos + b$cneg)
h <- dat.hackshaw1998; hack <- data.frame(study = paste(h$author, h$year), yi = h$yi, vi = h$vi)
db <- dat.debruin2009; debruin <- data.frame(study = paste(db$author, db$year), events = db$xi, total = db$ni)
# homogeneous proportions (every study 20%): the ML estimate of tau^2 is 0
homog <- data.frame(study = c("A", "B", "C", "D", "E", "F"), events = c(10, 21, 6, 40, 15, 8),
                    total = c(50, 100, 30, 200, 75, 40))
# a small generic set with tied variances (ranktest falls back to the normal approximation)
ties <- data.frame(study = paste("S", 1:8), yi = c(0.10, 0.35, -0.05, 0.62, 0.28, 0.80, 0.15, 0.44),
                   vi = c(0.02, 0.05, 0.02, 0.20, 0.05, 0.30, 0.04, 0.10))

bias_case("bcg", "binary", bcg, "RR")
bias_case("bcg", "binary", bcg, "OR")
bias_case("hackshaw1998", "generic", hack, "GEN")
bias_case("pritz1997", "proportion", pritz, "PLO")
bias_case("pritz1997", "proportion", pritz, "PFT")
bias_case("ties_demo", "generic", ties, "GEN")

for (g in list(list("pritz1997", pritz), list("debruin2009", debruin), list("homog_demo", homog))) {
  glmm_case(g[[1]], g[[2]])
  glmm_case(g[[1]], g[[2]], tight = TRUE)
  glmm_case(g[[1]], g[[2]], nAGQ = 1, tight = TRUE)
}

writeLines(toJSON(list(generator = paste("metafor", packageVersion("metafor"), "lme4",
                                         packageVersion("lme4")), cases = cases),
                  auto_unbox = TRUE, digits = NA, pretty = FALSE, na = "null", null = "null"), out)
cat(length(cases), "cases written to", out, "\n")
