using ModelCar.Common.IO;

namespace ModelCar.Common.Cli;

/// <summary>
/// Tekton results: one file per result in --results-dir, value without a trailing newline,
/// created 0644 in a 0755 directory so any pod UID can read it.
/// </summary>
public sealed class TektonResults(string? directory)
{
    public string? Directory { get; } = directory;

    public void Write(string name, string value)
    {
        if (Directory is null)
        {
            return;
        }
        if (name.Length == 0 || name.Contains('/') || name.Contains('\\') || name is "." or "..")
        {
            throw new ArgumentException($"invalid result name '{name}'", nameof(name));
        }
        Files.EnsureDirectory(Directory);
        Files.WriteAllTextAtomic(Path.Combine(Directory, name), value);
    }
}
