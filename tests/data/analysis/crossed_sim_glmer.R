# Reference values for tests/test_analysis_mixed.py, computed once with lme4.
# Run from the repository root: Rscript tests/data/analysis/crossed_sim_glmer.R
# (R 4, lme4 from Debian's r-cran-lme4). The printed values are copied into
# the test; the tests themselves do not need R.
library(lme4)
d <- read.csv("tests/data/analysis/crossed_sim.csv")
fit <- glmer(correct ~ model + (1 | participant) + (1 | image),
             data = d, family = binomial)
print(packageVersion("lme4"))
print(fixef(fit), digits = 10)
print(sqrt(diag(vcov(fit))), digits = 10)
vc <- as.data.frame(VarCorr(fit))
print(vc[, c("grp", "sdcor")], digits = 10)
# Marginal error rate per model: 1 - E[plogis(eta + s Z)], s^2 = sum of variances.
s <- sqrt(sum(vc$vcov))
eta <- fixef(fit)[1] + c(0, fixef(fit)[-1])
marginal <- sapply(eta, function(e)
  1 - integrate(function(z) plogis(e + s * z) * dnorm(z), -Inf, Inf,
                rel.tol = 1e-10)$value)
print(setNames(marginal, sort(unique(d$model))), digits = 10)
