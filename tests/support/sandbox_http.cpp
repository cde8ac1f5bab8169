#include "support/sandbox_http.hpp"

#include <curl/curl.h>

#include <stdexcept>

namespace segpush::test {

namespace {

size_t append(char* data, size_t size, size_t count, void* target) {
    static_cast<std::string*>(target)->append(data, size * count);
    return size * count;
}

}  // namespace

std::string sandbox_request(const std::string& base_url, const std::string& ca_file, const std::string& method,
                            const std::string& path, const std::string& body) {
    CURL* curl = curl_easy_init();
    std::string response;
    const std::string url = base_url + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    } else if (method != "GET") {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    const CURLcode code = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (code != CURLE_OK) throw std::runtime_error(method + " " + path + ": " + curl_easy_strerror(code));
    if (status >= 300) {
        throw std::runtime_error(method + " " + path + ": HTTP " + std::to_string(status) + " " + response);
    }
    return response;
}

rapidjson::Document sandbox_json(const std::string& base_url, const std::string& ca_file, const std::string& method,
                                 const std::string& path, const std::string& body) {
    rapidjson::Document document;
    document.Parse(sandbox_request(base_url, ca_file, method, path, body).c_str());
    if (document.HasParseError()) throw std::runtime_error(method + " " + path + ": not JSON");
    return document;
}

}  // namespace segpush::test
