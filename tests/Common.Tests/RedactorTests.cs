using ModelCar.Common.Logging;

namespace ModelCar.Common.Tests;

public class RedactorTests
{
    [Fact]
    public void Registered_secret_is_masked_everywhere()
    {
        Redactor.AddSecret("s3cr3t-token-value");
        var text = Redactor.Redact("token=s3cr3t-token-value and again s3cr3t-token-value");
        Assert.DoesNotContain("s3cr3t-token-value", text);
        Assert.Contains(Redactor.Mask, text);
    }

    [Theory]
    [InlineData("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop")]
    [InlineData("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==")]
    [InlineData("sent bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "eyJhbGciOiJSUzI1NiJ9")]
    [InlineData("{\"token\":\"tok-123456\",\"expires_in\":60}", "tok-123456")]
    [InlineData("GET https://cdn.example/x?Expires=1&Signature=abc123&Key-Pair-Id=K", "abc123")]
    public void Patterns_are_masked(string input, string secret)
    {
        Assert.DoesNotContain(secret, Redactor.Redact(input));
    }

    [Fact]
    public void Harmless_query_values_stay_readable()
    {
        var text = Redactor.Redact("PUT http://r/v2/x/blobs/uploads/1?digest=sha256:abc&_state=SIGNED");
        Assert.Contains("digest=sha256:abc", text);
        Assert.DoesNotContain("SIGNED", text);
    }

    [Fact]
    public void Url_drops_user_info()
    {
        var url = Redactor.Url(new Uri("https://user:pw@host.example/path?Signature=x"));
        Assert.DoesNotContain("pw", url);
        Assert.DoesNotContain("Signature=x", url);
        Assert.StartsWith("https://host.example/path", url);
    }
}
