namespace ModelCar.Common.Cli;

/// <summary>Exit codes shared by the four tools (skopeo/buildah convention).</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}

/// <summary>
/// A failure raised by a command (never by a library: libraries raise their own
/// <see cref="ModelCarException"/> types). Its message is printed as the one error line (after
/// redaction); no stack trace unless --verbose.
/// </summary>
public class ToolException : ModelCarException
{
    public ToolException(string message, Exception? inner = null, int exitCode = ExitCodes.Failure)
        : base(message, inner, transient: inner is ModelCarException { IsTransient: true }) => ExitCode = exitCode;

    public int ExitCode { get; }
}

/// <summary>Bad command-line input found after parsing (exit code 2).</summary>
public sealed class UsageException(string message, Exception? inner = null) : ToolException(message, inner, ExitCodes.Usage)
{
    public override bool IsInvalidInput => true;
}
