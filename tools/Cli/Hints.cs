namespace ModelCar.Common.Cli;

/// <summary>
/// Building blocks of the commands' flag hints: a library failure carries a typed reason
/// (<see cref="ModelCarException.Reason"/>), the command that owns the option names it.
/// </summary>
public static class Hints
{
    /// <summary><paramref name="hint"/> when <paramref name="reason"/> is anywhere in the chain of <paramref name="e"/>, else null.</summary>
    public static string? For(Exception e, Enum reason, string hint) => ModelCarException.FindReason(e, reason) is null ? null : hint;

    /// <summary>The hints that apply, "; "-joined; null when none does.</summary>
    public static string? Join(params string?[] hints) => hints.OfType<string>().ToList() is { Count: > 0 } found ? string.Join("; ", found) : null;
}
