using ModelCar.Common.IO;
using ModelCar.Common.Logging;

namespace ModelCar.HuggingFace;

/// <summary>Where the token comes from, in huggingface_hub's order.</summary>
public static class HubCredentials
{
    /// <summary>
    /// --token-file, else HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else $HF_HOME/token (HF_HOME defaults to
    /// ~/.cache/huggingface). Returns null when there is none (anonymous). The value is registered as a secret.
    /// </summary>
    public static string? ResolveToken(string? tokenFile, Func<string, string?> env)
    {
        if (!string.IsNullOrEmpty(tokenFile))
        {
            return SecretFile.Read(tokenFile, "token");
        }
        foreach (var name in new[] { "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN" })
        {
            var value = env(name)?.Trim();
            if (!string.IsNullOrEmpty(value))
            {
                Redactor.AddSecret(value);
                return value;
            }
        }
        var home = env("HF_HOME");
        if (string.IsNullOrEmpty(home))
        {
            var userHome = env("HOME");
            if (string.IsNullOrEmpty(userHome))
            {
                return null;
            }
            home = Path.Combine(userHome, ".cache", "huggingface");
        }
        var path = Path.Combine(home, "token");
        if (!File.Exists(path))
        {
            return null;
        }
        var token = File.ReadAllText(path).Trim();
        if (token.Length == 0)
        {
            return null;
        }
        Redactor.AddSecret(token);
        return token;
    }
}
