# Reference values from R metafor for subgroup analyses, meta-regression and sensitivity analyses.
# usage: Rscript tests/make_analysis_cases.R tests/metafor_cases_analyses.json
#
# Layout: {"generator": "metafor x.y.z", "cases": [CASE, ...]}; every CASE has
#   case      unique name
#   analysis  subgroup | metareg | cumul | influence | leave1out | gosh
#   method    tau2 estimator of the model (FE, DL, REML, ...)
#   test      z or knha
#   rows      input rows: study, yi, vi and any moderator / grouping / ordering columns
#   args      what was asked (moderators, factor columns, grouping column, order column)
#   expected  metafor's results (names below, per analysis)
suppressMessages({library(metafor); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "tests/metafor_cases_analyses.json"

ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
num <- function(x) if (is.null(x)) NULL else unname(as.numeric(x))

cases <- list()
add_case <- function(name, analysis, rows, method, test, args, expected) {
  cases[[length(cases) + 1]] <<- list(case = name, analysis = analysis, method = method, test = test,
                                      level = 0.95, rows = rows, args = args, expected = expected)
}

# ---- data ---------------------------------------------------------------------------------------
b <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(study = paste(b$author, b$year), yi = as.numeric(b$yi), vi = as.numeric(b$vi),
                  ablat = b$ablat, year = b$year, alloc = as.character(b$alloc))
h <- dat.hackshaw1998
hack <- data.frame(study = paste(h$author, h$year, h$study), yi = h$yi, vi = h$vi, year = h$year,
                   design = as.character(h$design), country = as.character(h$country))
r <- dat.raudenbush1985
raud <- data.frame(study = paste(r$author, r$year, r$study), yi = r$yi, vi = r$vi, weeks = r$weeks,
                   setting = as.character(r$setting), tester = as.character(r$tester), year = r$year)

# ---- meta-regression ----------------------------------------------------------------------------
metareg_expected <- function(res) {
  list(k = res$k, p = res$p, coef = rownames(res$beta), estimate = num(res$beta), se = num(res$se),
       stat = num(res$zval), pval = num(res$pval), ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub),
       df = if (is.null(res$ddf) || all(is.na(res$ddf))) NULL else num(res$ddf[1]),
       QM = num(res$QM), QM_df = num(res$QMdf[1]),
       QM_df2 = if (is.na(res$QMdf[2])) NULL else num(res$QMdf[2]),
       QMp = num(res$QMp), tau2 = num(res$tau2), I2 = num(res$I2), H2 = num(res$H2),
       R2 = if (is.null(res$R2)) NULL else num(res$R2), QE = num(res$QE), QE_df = res$k - res$p,
       QEp = num(res$QEp))
}
metareg_case <- function(name, d, numeric = character(), categorical = character(), method, test) {
  terms <- c(numeric, categorical)
  f <- as.formula(paste("~", paste(terms, collapse = " + ")))
  dd <- d
  for (v in categorical) dd[[v]] <- factor(dd[[v]])
  res <- rma(yi, vi, mods = f, data = dd, method = method, test = test, control = ctrl)
  add_case(name, "metareg", d, method, test, list(numeric = numeric, categorical = categorical),
           metareg_expected(res))
}
for (meth in c("REML", "DL")) for (tst in c("z", "knha")) {
  metareg_case(sprintf("bcg_ablat_%s_%s", meth, tst), bcg, "ablat", method = meth, test = tst)
  metareg_case(sprintf("bcg_alloc_%s_%s", meth, tst), bcg, categorical = "alloc", method = meth, test = tst)
  metareg_case(sprintf("bcg_ablat_alloc_%s_%s", meth, tst), bcg, "ablat", "alloc", method = meth, test = tst)
}
for (meth in c("FE", "DL", "REML", "ML", "HE", "SJ", "PM", "EB", "HS")) {
  metareg_case(sprintf("bcg_ablat_year_%s_z", meth), bcg, c("ablat", "year"), method = meth, test = "z")
}
metareg_case("raudenbush1985_weeks_REML_z", raud, "weeks", method = "REML", test = "z")
metareg_case("raudenbush1985_weeks_tester_REML_knha", raud, "weeks", "tester", method = "REML", test = "knha")
metareg_case("hackshaw1998_design_year_ML_z", hack, "year", "design", method = "ML", test = "z")

# ---- subgroups ----------------------------------------------------------------------------------
# What metafor users do: (1) separate fits per subgroup; (2) the test for subgroup differences from
# the fixed-effects meta-regression on the grouping factor (FE), from a fixed-effects model of the
# separately estimated subgroup estimates (random, separate tau2), or from the mixed-effects
# meta-regression with one tau2 (random, common tau2).
group_fit <- function(res) {
  list(k = res$k, estimate = num(res$beta), se = num(res$se), stat = num(res$zval), pval = num(res$pval),
       ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), tau2 = num(res$tau2), I2 = num(res$I2),
       Q = num(res$QE), Q_pval = num(res$QEp))
}
subgroup_case <- function(name, d, by, method, test, tau2) {
  g <- factor(d[[by]])
  levs <- levels(g)
  if (tau2 == "separate") {
    fits <- lapply(levs, function(l) rma(yi, vi, data = d[g == l, ], method = method, test = test,
                                         control = ctrl))
    groups <- lapply(seq_along(levs), function(j) c(list(name = levs[j], study = d$study[g == levs[j]]),
                                                    group_fit(fits[[j]])))
    est <- sapply(fits, function(f) f$beta[1]); se <- sapply(fits, function(f) f$se)
    bt <- rma(est, sei = se, mods = ~ factor(levs), method = "FE")
  } else {
    m0 <- rma(yi, vi, mods = ~ g - 1, data = d, method = method, test = test, control = ctrl)
    groups <- lapply(seq_along(levs), function(j) list(
      name = levs[j], study = d$study[g == levs[j]], k = sum(g == levs[j]), estimate = num(m0$beta[j]),
      se = num(m0$se[j]), stat = num(m0$zval[j]), pval = num(m0$pval[j]), ci_lb = num(m0$ci.lb[j]),
      ci_ub = num(m0$ci.ub[j]), tau2 = num(m0$tau2)))
    bt <- rma(yi, vi, mods = ~ g, data = d, method = method, test = test, control = ctrl)
  }
  test_res <- list(Q_between = num(bt$QM), df = num(bt$QMdf[1]),
                   df2 = if (is.na(bt$QMdf[2])) NULL else num(bt$QMdf[2]), pval = num(bt$QMp))
  if (tau2 == "common") test_res$tau2_common <- num(bt$tau2)
  # the fixed-effects decomposition Q_total = Q_between + sum(Q_within)
  if (method == "FE") test_res$Q_within <- num(rma(yi, vi, mods = ~ g, data = d, method = "FE")$QE)
  add_case(name, "subgroup", d, method, test, list(by = by, tau2 = tau2),
           list(groups = groups, test = test_res))
}
for (tau2 in c("separate", "common")) {
  subgroup_case(sprintf("bcg_alloc_FE_z_%s", tau2), bcg, "alloc", "FE", "z", tau2)
  for (meth in c("REML", "DL")) for (tst in c("z", "knha")) {
    subgroup_case(sprintf("bcg_alloc_%s_%s_%s", meth, tst, tau2), bcg, "alloc", meth, tst, tau2)
  }
  subgroup_case(sprintf("hackshaw1998_design_REML_z_%s", tau2), hack, "design", "REML", "z", tau2)
  subgroup_case(sprintf("raudenbush1985_tester_PM_z_%s", tau2), raud, "tester", "PM", "z", tau2)
}
# singleton subgroups (one study in Germany, Russia, Sweden, UK): separate fits give tau2 = 0 there
subgroup_case("hackshaw1998_country_REML_z_separate", hack, "country", "REML", "z", "separate")
subgroup_case("hackshaw1998_country_DL_z_common", hack, "country", "DL", "z", "common")

# ---- leave-one-out, cumulative, influence -------------------------------------------------------
fit_rows <- function(x, stat = "zval") {
  e <- list(estimate = num(x$estimate), se = num(x$se), stat = num(x[[stat]]), pval = num(x$pval),
            ci_lb = num(x$ci.lb), ci_ub = num(x$ci.ub), Q = num(x$Q), Q_pval = num(x$Qp))
  if (!is.null(x$tau2)) e$tau2 <- num(x$tau2)
  e$I2 <- num(x$I2); e$H2 <- num(x$H2)
  e
}
l1_case <- function(name, d, method, test) {
  res <- rma(yi, vi, data = d, method = method, test = test, control = ctrl)
  l1 <- leave1out(res)
  e <- fit_rows(l1, if (test == "z") "zval" else "tval")
  e$pval <- num(l1$pval)
  add_case(name, "leave1out", d, method, test, list(), e)
}
for (meth in c("FE", "DL")) {
  l1_case(sprintf("bcg_leave1out_%s_z", meth), bcg, meth, "z")
  l1_case(sprintf("hackshaw1998_leave1out_%s_z", meth), hack, meth, "z")
}
l1_case("bcg_leave1out_REML_knha", bcg, "REML", "knha")

cumul_case <- function(name, d, method, test, by = "year") {
  res <- rma(yi, vi, data = d, slab = study, method = method, test = test, control = ctrl)
  cu <- cumul(res, order = d[[by]])
  e <- fit_rows(cu, if (test == "z") "zval" else "tval")
  e$pval <- num(cu$pvals)
  e$study <- cu$slab
  add_case(name, "cumul", d, method, test, list(order = by), e)
}
cumul_case("bcg_cumul_REML_z", bcg, "REML", "z")
cumul_case("bcg_cumul_FE_z", bcg, "FE", "z")
cumul_case("bcg_cumul_DL_knha", bcg, "DL", "knha")
cumul_case("hackshaw1998_cumul_REML_z", hack, "REML", "z")

infl_case <- function(name, d, method, test) {
  res <- rma(yi, vi, data = d, method = method, test = test, control = ctrl)
  inf <- influence(res)
  e <- list(rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits), cook_d = num(inf$inf$cook.d),
            cov_r = num(inf$inf$cov.r), tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
            hat = num(inf$inf$hat), weight = num(inf$inf$weight), dfbetas = num(inf$dfbs[[1]]),
            inf = as.logical(inf$is.infl))
  pdf(NULL); bj <- baujat(res); invisible(dev.off())
  e$baujat_x <- num(bj$x); e$baujat_y <- num(bj$y)
  add_case(name, "influence", d, method, test, list(), e)
}
infl_case("bcg_influence_REML_z", bcg, "REML", "z")
infl_case("bcg_influence_FE_z", bcg, "FE", "z")
infl_case("bcg_influence_DL_knha", bcg, "DL", "knha")
infl_case("hackshaw1998_influence_DL_z", hack, "DL", "z")
infl_case("raudenbush1985_influence_REML_z", raud, "REML", "z")

# ---- GOSH ---------------------------------------------------------------------------------------
gosh_case <- function(name, d, method) {
  res <- rma(yi, vi, data = d, method = method, control = ctrl)
  g <- gosh(res, progbar = FALSE)
  mask <- as.integer(g$incl %*% (2^(seq_len(ncol(g$incl)) - 1)))   # bit j-1 set = study j included
  add_case(name, "gosh", d, method, "z", list(),
           list(subset = mask, k = num(g$res$k), estimate = num(g$res$estimate), I2 = num(g$res$I2),
                H2 = num(g$res$H2), Q = num(g$res$QE), tau2 = num(g$res$tau2)))
}
suppressMessages({
  gosh_case("bcg6_gosh_FE", bcg[1:6, ], "FE")
  gosh_case("bcg6_gosh_DL", bcg[1:6, ], "DL")
  gosh_case("raudenbush1985_8_gosh_FE", raud[1:8, ], "FE")
})

writeLines(toJSON(list(generator = paste("metafor", packageVersion("metafor")), cases = cases),
                  auto_unbox = TRUE, digits = NA, pretty = FALSE, na = "null"), out)
cat(length(cases), "cases written to", out, "\n")
