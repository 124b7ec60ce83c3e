using ModelCar.Common.Cli;

namespace ModelCar.Common.Tests;

public sealed class ProcessEnvironmentTests
{
    [Theory]
    [InlineData(null, null, ProcessEnvironment.NoHome)] // arbitrary UID: no HOME, no passwd entry
    [InlineData("", "", ProcessEnvironment.NoHome)]
    [InlineData(null, "/home/u", "/home/u")]
    [InlineData("/", "/root", null)] // a HOME that is set (even unwritable, as CRI-O's "/") is left alone
    public void Home_is_given_only_when_missing(string? home, string? passwdHome, string? expectedSet)
    {
        string? set = null;
        ProcessEnvironment.EnsureHome(k => k == "HOME" ? home : null, (k, v) => { Assert.Equal("HOME", k); set = v; }, () => passwdHome);
        Assert.Equal(expectedSet, set);
    }

    [Fact]
    public void A_passwd_lookup_that_throws_means_no_home()
    {
        string? set = null;
        ProcessEnvironment.EnsureHome(_ => null, (_, v) => set = v, () => throw new InvalidOperationException("The home directory of the current user could not be determined."));
        Assert.Equal(ProcessEnvironment.NoHome, set);
    }
}
