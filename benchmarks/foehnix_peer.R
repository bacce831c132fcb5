# Peer run for benchmarks/bench_foehn_peer.py: the R package foehnix on Ellboegen/Sattelberg.
#
# Our own short driver script (not foehnix code). It reads the two station files in foehnix's
# own layout (timestamp;dd;ff;rh;t, timestamp in seconds since 1970-01-01 UTC, t in degC), builds
# the combined zoo object the way foehnix's demodata()/vignette does (crest variables prefixed
# "crest_", outer merge), fits the "ellboegen" demo configuration
#
#   foehnix(diff_t ~ ff + rh, data, filter = list(dd = c(43, 223), crest_dd = c(90, 270)),
#           switch = TRUE)
#
# times the foehnix() call with system.time (one uncounted warm-up, then the median of --repeat
# calls), and writes the hourly probabilities (CSV) and a one-line JSON summary.
#
# The Foehn variable (--dt):
#   foehnix  diff_t = crest_t + (z_crest - z_valley) / 100 - t   (the foehnix demo: dry-adiabatic
#            1 K per 100 m; 10.27 K for 2107 m / 1080 m)
#   theta    potential temperature difference with the standard-atmosphere station pressures,
#            theta = T (1000 hPa / p)^(287.05 / 1004.6), T in K (the formula of verification/foehn.py),
#            to compare the two fitting codes on identical input.
#
# Usage:
#   Rscript benchmarks/foehnix_peer.R --data-dir DIR --repeat 5 --out-csv probs.csv \
#       [--out-json summary.json] [--dt foehnix|theta] [--valley-elevation 1080] [--crest-elevation 2107]
#       [--em-maxit N --em-tol TOL]
# --em-maxit/--em-tol override foehnix's EM controls (defaults maxit = 100, tol = 1e-8, shared with
# the IWLS solver); when given, the IWLS solver keeps its defaults (maxit[2] = 100, tol[2] = 1e-8).
# "--em-tol -Inf" runs exactly --em-maxit EM iterations (foehnix's documented way to use maxit as
# the only stopping rule).
# Needs the foehnix package on R_LIBS (or --r-lib DIR).

args <- commandArgs(trailingOnly = TRUE)
opt <- list(`data-dir` = NA, `repeat` = "5", `out-csv` = NA, `out-json` = NA, dt = "foehnix",
            `valley-elevation` = "1080", `crest-elevation` = "2107", `r-lib` = NA,
            `em-maxit` = NA, `em-tol` = NA)
i <- 1L
while (i <= length(args)) {
    key <- sub("^--", "", args[i])
    if (!key %in% names(opt) || i == length(args)) stop(sprintf("bad argument %s", args[i]))
    opt[[key]] <- args[i + 1L]
    i <- i + 2L
}
if (is.na(opt[["data-dir"]]) || is.na(opt[["out-csv"]])) stop("--data-dir and --out-csv are required")
if (!is.na(opt[["r-lib"]])) .libPaths(c(opt[["r-lib"]], .libPaths()))
n_repeat <- as.integer(opt[["repeat"]])
z_valley <- as.numeric(opt[["valley-elevation"]])
z_crest  <- as.numeric(opt[["crest-elevation"]])
stopifnot(n_repeat >= 1, opt$dt %in% c("foehnix", "theta"))

suppressPackageStartupMessages(library("foehnix"))

read_station <- function(file) {
    # as foehnix's data-raw/ellboegen.R and demodata()
    x <- utils::read.table(file, sep = ";", na.strings = "NA", header = TRUE, strip.white = TRUE)
    zoo::zoo(x[, -1], as.POSIXct(x[, 1], origin = "1970-01-01", tz = "UTC"))
}
ellboegen  <- read_station(file.path(opt[["data-dir"]], "ellboegen.csv"))
sattelberg <- read_station(file.path(opt[["data-dir"]], "sattelberg.csv"))
names(sattelberg) <- paste0("crest_", names(sattelberg))
data <- merge(ellboegen, sattelberg)

if (opt$dt == "foehnix") {
    data$diff_t <- data$crest_t + (z_crest - z_valley) / 100 - data$t
} else {
    p_std <- function(z) 101325 * (1 - 0.0065 * z / 288.15)^5.25588
    kappa <- 287.05 / 1004.6
    theta <- function(t, z) (t + 273.15) * (1e5 / p_std(z))^kappa
    data$diff_t <- theta(data$crest_t, z_crest) - theta(data$t, z_valley)
}

filter <- list(dd = c(43, 223), crest_dd = c(90, 270))
em <- list()
if (!is.na(opt[["em-maxit"]])) em$maxit <- c(as.integer(opt[["em-maxit"]]), 100L)
if (!is.na(opt[["em-tol"]]))   em$tol   <- c(as.numeric(opt[["em-tol"]]), 1e-8)
fit <- function() do.call(foehnix, c(list(formula = diff_t ~ ff + rh, data = data, filter = filter,
                                          switch = TRUE, verbose = FALSE), em))

invisible(fit())  # warm-up, uncounted
times <- numeric(n_repeat)
for (k in seq_len(n_repeat)) times[k] <- system.time(mod <- fit())[["elapsed"]]

prob <- mod$prob
p    <- as.numeric(prob$prob)
flag <- as.numeric(prob$flag)
valid <- !is.na(flag)
out <- data.frame(timestamp = as.integer(round(as.numeric(index(prob)))), prob = p, flag = flag)
utils::write.csv(out, opt[["out-csv"]], row.names = FALSE, na = "")

cf <- coef(mod)
num <- function(x) if (is.na(x)) "null" else sprintf("%.10g", x)
kv  <- function(v) paste(sprintf("\"%s\": %s", names(v), vapply(v, num, "")), collapse = ", ")
summary_json <- sprintf(paste0(
    "{\"fit_seconds\": %s, \"fit_seconds_all\": [%s], \"em_iterations\": %d, \"converged\": %s, ",
    "\"mean_probability\": %s, \"foehn_frequency\": %s, \"n_total\": %d, \"n_inflated\": %d, ",
    "\"n_missing\": %d, \"n_outside_filter\": %d, \"n_used\": %d, \"loglik\": %s, ",
    "\"dt\": \"%s\", \"coefficients\": {%s}, \"r_version\": \"%s\", \"zoo_version\": \"%s\"}"),
    num(stats::median(times)), paste(vapply(times, num, ""), collapse = ", "),
    as.integer(mod$optimizer$iter), tolower(as.character(mod$optimizer$iter < mod$control$maxit[1L])),
    num(mean(p[valid])), num(mean(p[valid] >= 0.5)), length(p), as.integer(mod$inflated),
    sum(is.na(flag)), sum(flag == 0, na.rm = TRUE), sum(flag == 1, na.rm = TRUE),
    num(as.numeric(logLik(mod))), opt$dt, kv(unclass(cf)[seq_along(cf)]),
    paste(R.version$major, R.version$minor, sep = "."), as.character(utils::packageVersion("zoo")))
cat(summary_json, "\n")
if (!is.na(opt[["out-json"]])) writeLines(summary_json, opt[["out-json"]])
