namespace ModelCar.Common.Cli;

/// <summary>Exit codes shared by the four tools (skopeo/buildah convention).</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}

/// <summary>
/// A failure the user can act on. Its message is printed as the one error line (after redaction);
/// no stack trace unless --verbose.
/// </summary>
public class ToolException : Exception
{
    public ToolException(string message, Exception? inner = null, int exitCode = ExitCodes.Failure)
        : base(message, inner) => ExitCode = exitCode;

    public int ExitCode { get; }
}

/// <summary>Bad command-line input found after parsing (exit code 2).</summary>
public sealed class UsageException(string message) : ToolException(message, null, ExitCodes.Usage);
