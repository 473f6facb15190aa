//! The profile of each provider: one line per provider. Everything outside
//! `provider/` that depends on a provider's rules asks here.

use super::Profile;
use super::bedrock::profile::BedrockProfile;
use super::openai::profile::OpenAiProfile;
use super::together::profile::TogetherProfile;
use crate::dataset::DatasetFormat;
use crate::domain::ProviderKind;

/// The rules of `kind`.
pub fn profile(kind: ProviderKind) -> &'static dyn Profile {
    match kind {
        ProviderKind::OpenAi => &OpenAiProfile,
        ProviderKind::Bedrock => &BedrockProfile,
        ProviderKind::Together => &TogetherProfile,
    }
}

/// Every provider's profile, in [`ProviderKind::ALL`]'s order.
pub fn all() -> impl Iterator<Item = &'static dyn Profile> {
    ProviderKind::ALL.into_iter().map(profile)
}

/// The first provider (in [`ProviderKind::ALL`]'s order) that trains on
/// `format`: whose rules prepare a dataset asked for in that format.
pub fn for_format(format: DatasetFormat) -> Option<&'static dyn Profile> {
    all().find(|p| p.dataset_format() == format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_profile() {
        for kind in ProviderKind::ALL {
            assert_eq!(profile(kind).kind(), kind);
        }
    }

    #[test]
    fn every_dataset_format_is_some_providers() {
        for format in [
            DatasetFormat::OpenAiChat,
            DatasetFormat::BedrockConversation,
        ] {
            assert_eq!(for_format(format).map(|p| p.dataset_format()), Some(format));
        }
    }
}
