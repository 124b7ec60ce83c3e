using ModelCar.Common;

namespace ModelCar.HuggingFace;

/// <summary>Typed cases of Hub failures a caller can act on (the command adds which option to change).</summary>
public enum HubReason
{
    /// <summary>The repo is gated: a token of an account that accepted its terms is needed.</summary>
    GatedRepo,

    /// <summary>The token sent is invalid or expired.</summary>
    InvalidToken,

    /// <summary>No such repo of that type, or it is private and the token (if any) cannot read it.</summary>
    RepoNotFound,

    /// <summary>The revision (branch, tag, refs/pr/N, commit) is not in the repo.</summary>
    RevisionNotFound,

    /// <summary>No file of the repo (or of the offline snapshot) matches the include/exclude patterns.</summary>
    NoFileMatchesFilter,
}

/// <summary>A failure talking to the Hub or keeping a local snapshot (never names a CLI flag; <see cref="ModelCarException.Reason"/> is a <see cref="HubReason"/> where one applies).</summary>
public class HubException(string message, Exception? inner = null, bool transient = false, HubReason? reason = null)
    : ModelCarException(message, inner, transient, reason)
{
}

/// <summary>A value the caller passed (an endpoint, a repo id) is malformed.</summary>
public sealed class HubInputException(string message) : HubException(message)
{
    public override bool IsInvalidInput => true;
}
