//! How many examples a run wants: at least enough to train, at most a sample.

/// The fewest examples a run may ask for: OpenAI refuses training files
/// with fewer than this.
pub const MIN_EXAMPLES_FLOOR: u32 = 10;
/// The most examples a run may ask for.
pub const MAX_EXAMPLES_CEILING: u32 = 1_000_000;

/// `min` and `max` training examples, each within
/// [`MIN_EXAMPLES_FLOOR`]..=[`MAX_EXAMPLES_CEILING`] and `min <= max`:
/// checked once when built, so preparation can sample and count against
/// them without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleBounds {
    min: u32,
    max: u32,
}

/// Which bound is wrong. Each names the field it is about, so the
/// start-run checker can report it where the caller wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExampleBoundsError {
    #[error("must be a whole number from {MIN_EXAMPLES_FLOOR} to {MAX_EXAMPLES_CEILING}")]
    MinOutOfRange,
    #[error("must be a whole number from {MIN_EXAMPLES_FLOOR} to {MAX_EXAMPLES_CEILING}")]
    MaxOutOfRange,
    #[error("must be at least config.min_examples ({min})")]
    MaxBelowMin { min: u32 },
}

impl ExampleBoundsError {
    /// The request field the error is about.
    pub fn field(self) -> &'static str {
        match self {
            ExampleBoundsError::MinOutOfRange => "config.min_examples",
            ExampleBoundsError::MaxOutOfRange | ExampleBoundsError::MaxBelowMin { .. } => {
                "config.max_examples"
            }
        }
    }
}

impl ExampleBounds {
    /// Whether `n` may be a bound at all.
    pub fn allows(n: i64) -> bool {
        (i64::from(MIN_EXAMPLES_FLOOR)..=i64::from(MAX_EXAMPLES_CEILING)).contains(&n)
    }

    /// Every error of the two bounds, minimum's first, as the checker
    /// lists them.
    pub fn new(min: i64, max: i64) -> Result<Self, Vec<ExampleBoundsError>> {
        let mut errors = Vec::new();
        if !Self::allows(min) {
            errors.push(ExampleBoundsError::MinOutOfRange);
        }
        if !Self::allows(max) {
            errors.push(ExampleBoundsError::MaxOutOfRange);
        }
        let (Ok(min), Ok(max)) = (u32::try_from(min), u32::try_from(max)) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        if min > max {
            return Err(vec![ExampleBoundsError::MaxBelowMin { min }]);
        }
        Ok(Self { min, max })
    }

    pub fn min(self) -> u32 {
        self.min
    }

    pub fn max(self) -> u32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_from_the_floor_to_the_ceiling_are_kept() {
        let b = ExampleBounds::new(10, 1_000_000).unwrap();
        assert_eq!((b.min(), b.max()), (10, 1_000_000));
        assert!(ExampleBounds::new(20, 20).is_ok());
    }

    #[test]
    fn a_bound_below_the_floor_or_above_the_ceiling_is_refused_naming_its_field() {
        let errs = ExampleBounds::new(9, 1_000_001).unwrap_err();
        assert_eq!(
            errs,
            [
                ExampleBoundsError::MinOutOfRange,
                ExampleBoundsError::MaxOutOfRange
            ]
        );
        assert_eq!(errs[0].field(), "config.min_examples");
        assert_eq!(errs[1].field(), "config.max_examples");
        assert_eq!(
            errs[0].to_string(),
            "must be a whole number from 10 to 1000000"
        );
    }

    #[test]
    fn a_maximum_below_the_minimum_is_refused_with_the_minimum() {
        let errs = ExampleBounds::new(100, 99).unwrap_err();
        assert_eq!(errs, [ExampleBoundsError::MaxBelowMin { min: 100 }]);
        assert_eq!(
            errs[0].to_string(),
            "must be at least config.min_examples (100)"
        );
        assert_eq!(errs[0].field(), "config.max_examples");
    }
}
