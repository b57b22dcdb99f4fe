# Doxygen's INPUT_FILTER for bnlab's headers, whose comments are plain `//` lines: Doxygen reads
# only `///`, so this turns them into documentation without changing the files.
#   - a header's first comment block, when #-lines (includes) follow it, documents the file;
#   - any other block of whole-line comments documents what follows it;
#   - a comment after code on the same line ("int count;  // what it counts") documents that
#     member (`///<`);
#   - `<`, `>`, `\` and `@` in comment text outside double quotes are escaped, so that
#     "-> <out>" is text, not an HTML tag or a Doxygen command (quoted text Doxygen leaves as is).
function escaped(text,    parts, n, i, result) {
    # Outside double quotes only: Doxygen reads quoted text as it is.
    n = split(text, parts, "\"")
    result = ""
    for (i = 1; i <= n; i++) {
        if (i % 2 == 1) {
            gsub(/\\/, "\\\\", parts[i])
            gsub(/@/, "\\@", parts[i])
            gsub(/</, "\\<", parts[i])
            gsub(/>/, "\\>", parts[i])
        }
        result = result (i > 1 ? "\"" : "") parts[i]
    }
    return result
}
function flush(next_line,    i, is_file) {
    if (count == 0) return
    is_file = !file_documented && next_line ~ /^[[:space:]]*(#|$)/
    if (is_file) {
        print "/// @file"
        file_documented = 1
    }
    for (i = 1; i <= count; i++) print block_indent[i] "///" escaped(block[i])
    count = 0
}
/^[[:space:]]*\/\/( |$)/ {
    match($0, /^[[:space:]]*/)
    count++
    block_indent[count] = substr($0, 1, RLENGTH)
    block[count] = substr($0, RLENGTH + 3)
    next
}
{
    flush($0)
    line = $0
    # A trailing comment after code (not inside a string: the code part has an even number of
    # quotes).
    position = index(line, "  // ")
    if (position > 0) {
        code = substr(line, 1, position - 1)
        quotes = gsub(/"/, "\"", code)
        if (quotes % 2 == 0 && code ~ /[;,{][[:space:]]*$/)
            line = code "  ///< " escaped(substr(line, position + 5))
    }
    print line
}
END { flush("") }
