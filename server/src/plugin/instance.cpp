// Plugin instance lifecycle, every call guarded so a throwing plugin cannot unwind the host.
#include "plugin/instance.hpp"

namespace trellis::plugin {

Instance::Instance(std::shared_ptr<const Library> library, std::string config_json,
                   std::shared_ptr<spdlog::logger> logger, std::shared_ptr<db::Pool> database)
    : library_(std::move(library)) {
    host_.database = std::move(database);
    host_.plugin_name = library_->name;
    host_.config_json = std::move(config_json);
    host_.logger = std::move(logger);
}

tl::expected<std::unique_ptr<Instance>, std::string> Instance::create(std::shared_ptr<const Library> library,
                                                                      std::string config_json,
                                                                      std::shared_ptr<spdlog::logger> logger,
                                                                      std::shared_ptr<db::Pool> database) {
    std::unique_ptr<Instance> self(
        new Instance(std::move(library), std::move(config_json), std::move(logger), std::move(database)));
    trellis_status status = TRELLIS_ERROR;
    self->host_.creating = true;
    try {
        status = self->library_->descriptor->on_create(&host_api(), &self->host_, &self->instance_);
    } catch (...) {
        self->host_.error = "on_create threw an exception through the ABI";
    }
    self->host_.creating = false;
    if (status != TRELLIS_OK) return tl::unexpected(self->failure("on_create", status));
    self->created_ = true;
    return self;
}

tl::expected<void, std::string> Instance::init() {
    host_.error.clear();
    host_.refusal.clear();
    host_.registering = true;
    trellis_status status = TRELLIS_ERROR;
    try {
        status = library_->descriptor->on_init(instance_);
    } catch (...) {
        host_.error = "on_init threw an exception through the ABI";
    }
    host_.registering = false;
    if (status != TRELLIS_OK) {
        host_.routes.clear();
        host_.middleware.clear();
        host_.migrations.clear();
        host_.checks.clear();
        return tl::unexpected(failure("on_init", status));
    }
    initialised_ = true;
    return {};
}

void Instance::shutdown() noexcept {
    if (!initialised_) return;
    initialised_ = false;
    try {
        library_->descriptor->on_shutdown(instance_);
    } catch (...) {
        if (host_.logger) host_.logger->error("on_shutdown threw an exception through the ABI");
    }
}

Instance::~Instance() {
    shutdown();
    if (!created_) return;
    try {
        library_->descriptor->on_destroy(instance_);
    } catch (...) {
        if (host_.logger) host_.logger->error("on_destroy threw an exception through the ABI");
    }
}

std::vector<HealthCheckResult> Instance::run_health_checks() const {
    std::vector<HealthCheckResult> results;
    results.reserve(host_.checks.size());
    for (const auto& registered : host_.checks) {
        trellis_check check;
        trellis_status status = TRELLIS_ERROR;
        try {
            status = registered.check(registered.user_data, &check);
        } catch (...) {
            check.message = "the check threw an exception through the ABI";
        }
        if (status != TRELLIS_OK && check.message.empty())
            check.message = "failed with status " + std::to_string(status) + " and no message";
        results.push_back(HealthCheckResult{registered.name, status == TRELLIS_OK, std::move(check.message)});
    }
    return results;
}

std::string Instance::failure(const char* call, trellis_status status) const {
    std::string message = std::string(call) + " failed";
    // The host's own reason for refusing a registration says what to change, better than
    // the plugin's message about it ("cannot register route ... (status 2)").
    if (!host_.refusal.empty()) return message + ": the host refused " + host_.refusal;
    if (!host_.error.empty()) return message + ": " + host_.error;
    return message + " with status " + std::to_string(status) + " and no message";
}

}  // namespace trellis::plugin
