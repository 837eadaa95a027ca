# Turns a text file into a C source defining NAME[] (the file's bytes) and
# NAME_len: awk -v name=NAME -f embed.awk FILE > FILE.c. Every line becomes a
# string literal; backslash, double quote and question mark (trigraphs) are
# escaped. Used for the status page (src/statuspage.html).
BEGIN {
	printf "/* Generated from %s by scripts/embed.awk; do not edit. */\n", ARGV[1]
	printf "#include <stddef.h>\n\n"
	printf "extern const char %s[];\nextern const size_t %s_len;\n\n", name, name
	printf "const char %s[] =\n", name
	n = 0
}
{
	gsub(/\\/, "\\\\")
	gsub(/"/, "\\\"")
	gsub(/\?/, "\\?")
	gsub(/\t/, "\\t")
	printf "    \"%s\\n\"\n", $0
	n++
}
END {
	if (n == 0)
		printf "    \"\"\n"
	printf "    ;\nconst size_t %s_len = sizeof(%s) - 1;\n", name, name
}
