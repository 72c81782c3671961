/**
 * The one comparison of usernames, used by createUser's uniqueness, login's lookup and the
 * login throttle's counters alike, and computed here rather than in the database: the
 * database's lower() depends on its locale (PostgreSQL under en_US folds "İ" to "i", PGlite's C
 * locale folds only ASCII), and a counter that folded differently from the lookup let "ADMİN"
 * log in as "admin" while "admin" was locked. NFKC makes compatibility forms one name
 * ("ａｄｍｉｎ" is "admin"); toLowerCase is locale-independent ("İ" becomes "i̇", not "i").
 */
export function usernameKey(username: string): string {
  return username.trim().normalize('NFKC').toLowerCase().normalize('NFKC');
}
