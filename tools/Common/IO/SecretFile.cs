using ModelCar.Common.Logging;

namespace ModelCar.Common.IO;

/// <summary>Reads a token or password file (trimmed) and registers its content as a secret.</summary>
public static class SecretFile
{
    public static string Read(string path, string what)
    {
        string value;
        try
        {
            value = File.ReadAllText(path).Trim();
        }
        catch (FileNotFoundException)
        {
            throw new InputFileException($"{what} file '{path}' does not exist");
        }
        catch (DirectoryNotFoundException)
        {
            throw new InputFileException($"{what} file '{path}' does not exist");
        }
        catch (UnauthorizedAccessException)
        {
            throw new InputFileException($"{what} file '{path}' is not readable (permission denied)");
        }
        catch (IOException e)
        {
            throw new InputFileException($"{what} file '{path}' could not be read: {e.Message}");
        }
        if (value.Length == 0)
        {
            throw new InputFileException($"{what} file '{path}' is empty");
        }
        Redactor.AddSecret(value);
        return value;
    }
}
