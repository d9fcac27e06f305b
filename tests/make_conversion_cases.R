# Reference values for median/IQR/range -> mean/SD conversions, from R package meta's own
# estimators (meta 6.5-0, R/mean-sd-internal.R: mean_sd_range, mean_sd_iqr, mean_sd_iqr_range).
# Usage, from the repository root (needs meta 6.5-0 + jsonlite on .libPaths()):
#   Rscript tests/make_conversion_cases.R shared tests/conversion_cases.json
# ('shared' = the seed and sample sizes of the stored reference; any other word gives a fresh set.)
# tests/wan2014_tables.json holds the two tables these functions read, meta's options
# 'Wan2014.Table1' and 'Wan2014.Table2' (R/meta-internal.R), e.g. meta::gs("Wan2014.Table1").
args <- commandArgs(TRUE); which <- args[1]; out <- args[2]
suppressMessages(library(meta))
mr <- getFromNamespace("mean_sd_range", "meta")
mi <- getFromNamespace("mean_sd_iqr", "meta")
mir <- getFromNamespace("mean_sd_iqr_range", "meta")
set.seed(if (which == "shared") 20261130 else 777)
ns <- if (which == "shared") c(5, 8, 10, 13, 18, 25, 29, 30, 40, 50, 51, 75, 100, 150, 200, 201, 202, 300, 500, 1000) else
      c(6, 9, 12, 17, 23, 31, 45, 60, 99, 120, 199, 250, 400, 800)
cases <- list()
add <- function(x) cases[[length(cases) + 1]] <<- x
for (n in ns) for (rep in 1:3) {
  # a skewed or symmetric five-number summary
  med <- round(runif(1, 2, 40), 1)
  lo <- round(med - runif(1, 0.5, 10), 1); hi <- round(med + runif(1, 0.5, 25), 1)
  q1 <- round(med - (med - lo) * runif(1, 0.2, 0.8), 2); q3 <- round(med + (hi - med) * runif(1, 0.2, 0.8), 2)
  if (!(lo < q1 && q1 < med && med < q3 && q3 < hi)) next
  for (mm in c("Luo", "Wan")) {
    r <- mr(n, med, lo, hi, method.mean = mm)
    add(list(id = sprintf("S1_n%d_r%d_%s", n, rep, mm), scenario = "S1", n = n, median = med, min = lo, max = hi,
             method_mean = mm, method_sd = "Wan", mean = r$mean, sd = r$sd))
    r <- mi(n, med, q1, q3, method.mean = mm)
    add(list(id = sprintf("S3_n%d_r%d_%s", n, rep, mm), scenario = "S3", n = n, median = med, q1 = q1, q3 = q3,
             method_mean = mm, method_sd = "Wan", mean = r$mean, sd = r$sd))
    for (ms in c("Shi", "Wan")) {
      r <- mir(n, med, q1, q3, lo, hi, method.mean = mm, method.sd = ms)
      add(list(id = sprintf("S2_n%d_r%d_%s_%s", n, rep, mm, ms), scenario = "S2", n = n, median = med, q1 = q1, q3 = q3,
               min = lo, max = hi, method_mean = mm, method_sd = ms, mean = r$mean, sd = r$sd))
    }
  }
}
meta_info <- list(generator = "meta", version = as.character(packageVersion("meta")), R = R.version.string,
  functions = "meta:::mean_sd_range (S1), meta:::mean_sd_iqr (S3), meta:::mean_sd_iqr_range (S2)",
  note = "S1 and S3 SD: Wan et al. 2014 (tabulated constants for small n, as meta does); S2 SD: Shi et al. 2020 or Wan 2014; mean: Luo et al. 2018 or Wan et al. 2014 (meta's form, with the (a - 2m + b)/(4n) term in S1)")
writeLines(jsonlite::toJSON(list(meta = meta_info, cases = cases), auto_unbox = TRUE, digits = NA, pretty = TRUE), out)
cat(length(cases), "cases written to", out, "\n")
