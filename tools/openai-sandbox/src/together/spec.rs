//! A `POST /fine-tunes` body checked and resolved ([`JobSpec`]): Together's
//! defaults filled in (the sandbox's where Together publishes none) and
//! the sandbox's limits (see the module above) enforced, each refusal
//! naming the parameter to blame. Pure, so every limit is unit-tested.

use serde_json::{Map, Value, json};

use super::{
    BaseModel, FULL_BATCH, LORA_BATCH, MAX_EPOCHS, MAX_EVALS, MAX_LEARNING_RATE, MAX_LORA_RANK,
    MAX_SUFFIX_CHARS, MIN_LEARNING_RATE, base_model,
};

/// Why a creation (or estimate) request is refused: the message and the
/// parameter to blame, answered as 400.
pub type Refusal = (String, &'static str);

/// A `POST /fine-tunes` body, checked and with Together's defaults filled
/// in (or the sandbox's, where Together's are not published).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub model: &'static BaseModel,
    pub training_file: String,
    pub validation_file: Option<String>,
    pub suffix: Option<String>,
    pub n_epochs: u32,
    pub n_checkpoints: u32,
    pub n_evals: u32,
    pub batch_size: u64,
    pub learning_rate: f64,
    /// `{"type": "Lora", "lora_r", "lora_alpha", "lora_dropout",
    /// "lora_trainable_modules"}` or `{"type": "Full"}`.
    pub training_type: Value,
    /// `{"method": "sft", "train_on_inputs": bool}`.
    pub training_method: Value,
    pub lr_scheduler: Value,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub random_seed: Option<i64>,
    pub packing: bool,
    pub max_seq_length: Option<u64>,
    pub from_checkpoint: Option<String>,
    pub wandb_project_name: Option<String>,
    pub wandb_name: Option<String>,
}

fn integer(body: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            (
                format!("{name} must be a non-negative integer, got {v}"),
                name,
            )
        }),
    }
}

fn number(body: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| (format!("{name} must be a number, got {v}"), name)),
    }
}

fn text(body: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err((format!("{name} must be a string, got {v}"), name)),
    }
}

fn within(name: &'static str, value: u64, min: u64, max: u64) -> Result<u64, Refusal> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err((
            format!("{name} must be between {min} and {max}, got {value}"),
            name,
        ))
    }
}

/// The training type as sent, checked, with LoRA defaults (rank 8,
/// alpha 16, dropout 0, all linear modules); absent means LoRA.
fn training_type(body: &Map<String, Value>) -> Result<Value, Refusal> {
    const P: &str = "training_type";
    let given = match body.get(P) {
        None | Some(Value::Null) => json!({"type": "Lora"}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => return Err((format!("{P} must be an object, got {v}"), P)),
    };
    match given.get("type").and_then(Value::as_str) {
        Some("Full") => Ok(json!({"type": "Full"})),
        Some("Lora") => {
            let r = given.get("lora_r").map_or(Some(8), Value::as_u64);
            let alpha = given.get("lora_alpha").map_or(Some(16), Value::as_u64);
            let (Some(r), Some(alpha)) = (r, alpha) else {
                return Err((
                    "training_type.lora_r and lora_alpha must be integers".to_owned(),
                    P,
                ));
            };
            if !(1..=MAX_LORA_RANK).contains(&r) {
                return Err((
                    format!("lora_r must be between 1 and {MAX_LORA_RANK}, got {r}"),
                    P,
                ));
            }
            if alpha == 0 {
                return Err(("lora_alpha must be positive".to_owned(), P));
            }
            let dropout = given
                .get("lora_dropout")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if !(0.0..1.0).contains(&dropout) {
                return Err((format!("lora_dropout must be in [0, 1), got {dropout}"), P));
            }
            let modules = given
                .get("lora_trainable_modules")
                .and_then(Value::as_str)
                .unwrap_or("all-linear");
            Ok(json!({
                "type": "Lora",
                "lora_r": r,
                "lora_alpha": alpha,
                "lora_dropout": dropout,
                "lora_trainable_modules": modules,
            }))
        }
        other => Err((
            format!("training_type.type must be Lora or Full, got {other:?}"),
            P,
        )),
    }
}

/// SFT only: the sandbox's chat engine answers from `messages` lines.
/// `train_on_inputs` is shown as a boolean (`auto` is false), the only
/// form the published `TrainingMethodSFT` schema accepts.
fn training_method(body: &Map<String, Value>) -> Result<Value, Refusal> {
    const P: &str = "training_method";
    let given = match body.get(P) {
        None | Some(Value::Null) => return Ok(json!({"method": "sft", "train_on_inputs": false})),
        Some(v) => v,
    };
    match given.get("method").and_then(Value::as_str) {
        Some("sft") => {
            let on_inputs = given
                .get("train_on_inputs")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(json!({"method": "sft", "train_on_inputs": on_inputs}))
        }
        Some("dpo") => Err((
            "the sandbox trains sft only; dpo is not supported".to_owned(),
            P,
        )),
        other => Err((
            format!("training_method.method must be sft or dpo, got {other:?}"),
            P,
        )),
    }
}

impl JobSpec {
    /// Checks a `POST /fine-tunes` body as the sandbox's Together would.
    /// Whether the files exist is the caller's to check.
    pub fn from_request(body: &Value) -> Result<Self, Refusal> {
        let Value::Object(body) = body else {
            return Err(("the request body must be a JSON object".to_owned(), "body"));
        };
        let model_name =
            text(body, "model")?.ok_or_else(|| ("model is required".to_owned(), "model"))?;
        let model = base_model(&model_name).ok_or_else(|| {
            (
                format!("Model {model_name} is not supported for fine-tuning"),
                "model",
            )
        })?;
        let training_file = text(body, "training_file")?
            .ok_or_else(|| ("training_file is required".to_owned(), "training_file"))?;
        let validation_file = text(body, "validation_file")?;
        let suffix = text(body, "suffix")?;
        if let Some(s) = &suffix {
            let n = s.chars().count();
            if n == 0 || n > MAX_SUFFIX_CHARS || s.chars().any(|c| c == '/' || c.is_whitespace()) {
                return Err((
                    format!(
                        "suffix must be 1 to {MAX_SUFFIX_CHARS} characters, without '/' or spaces"
                    ),
                    "suffix",
                ));
            }
        }
        let n_epochs = within(
            "n_epochs",
            integer(body, "n_epochs")?.unwrap_or(1),
            1,
            MAX_EPOCHS,
        )?;
        let n_checkpoints = within(
            "n_checkpoints",
            integer(body, "n_checkpoints")?.unwrap_or(1),
            1,
            n_epochs,
        )?;
        let n_evals = within(
            "n_evals",
            integer(body, "n_evals")?.unwrap_or(0),
            0,
            MAX_EVALS,
        )?;
        if n_evals > 0 && validation_file.is_none() {
            return Err((
                "n_evals needs a validation_file".to_owned(),
                "validation_file",
            ));
        }
        let training_type = training_type(body)?;
        let limits = if training_type["type"] == "Full" {
            FULL_BATCH
        } else {
            LORA_BATCH
        };
        let batch_size = match body.get("batch_size") {
            None | Some(Value::Null) => limits.max,
            Some(Value::String(s)) if s == "max" => limits.max,
            Some(v) => match v.as_u64() {
                Some(b) => within("batch_size", b, limits.min, limits.max)?,
                None => {
                    return Err((
                        format!("batch_size must be an integer or \"max\", got {v}"),
                        "batch_size",
                    ));
                }
            },
        };
        let learning_rate = number(body, "learning_rate")?.unwrap_or(1e-5);
        if !(MIN_LEARNING_RATE..=MAX_LEARNING_RATE).contains(&learning_rate) {
            return Err((
                format!(
                    "learning_rate must be between {MIN_LEARNING_RATE} and {MAX_LEARNING_RATE}, got {learning_rate}"
                ),
                "learning_rate",
            ));
        }
        let lr_scheduler = match body.get("lr_scheduler") {
            Some(v @ Value::Object(o)) if o.contains_key("lr_scheduler_type") => v.clone(),
            _ => json!({"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.0}}),
        };
        let random_seed = match body.get("random_seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                (
                    format!("random_seed must be an integer, got {v}"),
                    "random_seed",
                )
            })?),
        };
        Ok(Self {
            model,
            training_file,
            validation_file,
            suffix,
            n_epochs: n_epochs as u32,
            n_checkpoints: n_checkpoints as u32,
            n_evals: n_evals as u32,
            batch_size,
            learning_rate,
            training_type,
            training_method: training_method(body)?,
            lr_scheduler,
            warmup_ratio: number(body, "warmup_ratio")?.unwrap_or(0.0),
            max_grad_norm: number(body, "max_grad_norm")?.unwrap_or(1.0),
            weight_decay: number(body, "weight_decay")?.unwrap_or(0.0),
            random_seed,
            packing: body.get("packing").and_then(Value::as_bool).unwrap_or(true),
            max_seq_length: integer(body, "max_seq_length")?,
            from_checkpoint: text(body, "from_checkpoint")?,
            wandb_project_name: text(body, "wandb_project_name")?,
            wandb_name: text(body, "wandb_name")?,
        })
    }

    pub fn is_full(&self) -> bool {
        self.training_type["type"] == "Full"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference";

    fn spec(extra: Value) -> JobSpec {
        let mut body = json!({"model": LLAMA, "training_file": "file-1"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        JobSpec::from_request(&body).unwrap()
    }

    #[test]
    fn requests_outside_the_sandboxs_limits_are_refused_with_the_parameter_to_blame() {
        let refused = |extra: Value| {
            let mut body = json!({"model": LLAMA, "training_file": "file-1"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            JobSpec::from_request(&body).unwrap_err().1
        };
        assert_eq!(refused(json!({"model": "gpt-4o-mini"})), "model");
        assert_eq!(refused(json!({"n_epochs": 21})), "n_epochs");
        assert_eq!(refused(json!({"learning_rate": 0.5})), "learning_rate");
        assert_eq!(
            refused(json!({"training_type": {"type": "Lora", "lora_r": 128, "lora_alpha": 16}})),
            "training_type"
        );
        assert_eq!(refused(json!({"batch_size": 2})), "batch_size");
        assert_eq!(refused(json!({"suffix": "a/b"})), "suffix");
        assert_eq!(refused(json!({"n_checkpoints": 2})), "n_checkpoints");
        assert_eq!(refused(json!({"n_evals": 1})), "validation_file");
        let s = spec(json!({"batch_size": "max", "training_type": {"type": "Full"}}));
        assert_eq!(s.batch_size, FULL_BATCH.max);
    }

    #[test]
    fn an_empty_request_beside_model_and_file_gets_together_defaults() {
        let s = spec(json!({}));
        assert_eq!((s.n_epochs, s.n_checkpoints, s.n_evals), (1, 1, 0));
        assert_eq!(s.batch_size, LORA_BATCH.max);
        assert_eq!(s.training_type["type"], "Lora");
        assert_eq!(
            s.training_method,
            json!({"method": "sft", "train_on_inputs": false})
        );
        assert!(!s.is_full());
    }
}
